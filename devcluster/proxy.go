package devcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"
)

// linkProxy is the in-process toxiproxy that carries every link between
// data centers, with its HTTP API.
//
// toxiproxy's own ApiServer.Listen cannot be stopped and exits the whole
// process (log.Fatal) when its port is taken, so we serve the same API
// handlers from our own http.Server: same routes, same gorilla/mux router
// (the handlers read path variables with mux.Vars), stoppable.
type linkProxy struct {
	api  *toxiproxy.ApiServer
	srv  *http.Server
	logf *os.File
	done chan struct{} // closed when srv.Serve has returned
}

// startLinkProxy starts one proxy per link and the API on apiAddr. The
// proxies' log (zerolog JSON lines, one per accepted connection and
// state change) is appended to logPath.
func startLinkProxy(apiAddr string, links []Link, logPath string) (*linkProxy, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open toxiproxy log: %w", err)
	}
	zl := zerolog.New(logf).With().Timestamp().Logger()
	lp := &linkProxy{
		api:  toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zl),
		logf: logf,
		done: make(chan struct{}),
	}
	for _, l := range links {
		p := toxiproxy.NewProxy(lp.api, l.Name, l.Listen, l.Upstream)
		if err := lp.api.Collection.Add(p, true); err != nil {
			lp.stopProxies()
			logf.Close()
			return nil, fmt.Errorf("start link %s on %s: %w", l.Name, l.Listen, err)
		}
	}
	ln, err := net.Listen("tcp", apiAddr)
	if err != nil {
		lp.stopProxies()
		logf.Close()
		return nil, fmt.Errorf("listen toxiproxy api: %w", err)
	}
	lp.srv = &http.Server{
		Handler:           apiRouter(lp.api, zl),
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      30 * time.Second,
	}
	go func() {
		defer close(lp.done)
		// Serve returns ErrServerClosed after close; any other error means
		// the API is gone, which tools will notice on their next call.
		_ = lp.srv.Serve(ln)
	}()
	return lp, nil
}

// apiRouter mirrors the routes of toxiproxy's ApiServer.Listen (v2.5.0).
func apiRouter(s *toxiproxy.ApiServer, zl zerolog.Logger) http.Handler {
	r := mux.NewRouter()
	r.Use(hlog.NewHandler(zl))
	r.Use(func(next http.Handler) http.Handler { return http.TimeoutHandler(next, 25*time.Second, "") })
	r.HandleFunc("/reset", s.ResetState).Methods("POST")
	r.HandleFunc("/proxies", s.ProxyIndex).Methods("GET")
	r.HandleFunc("/proxies", s.ProxyCreate).Methods("POST")
	r.HandleFunc("/populate", s.Populate).Methods("POST")
	r.HandleFunc("/proxies/{proxy}", s.ProxyShow).Methods("GET")
	r.HandleFunc("/proxies/{proxy}", s.ProxyUpdate).Methods("POST")
	r.HandleFunc("/proxies/{proxy}", s.ProxyDelete).Methods("DELETE")
	r.HandleFunc("/proxies/{proxy}/toxics", s.ToxicIndex).Methods("GET")
	r.HandleFunc("/proxies/{proxy}/toxics", s.ToxicCreate).Methods("POST")
	r.HandleFunc("/proxies/{proxy}/toxics/{toxic}", s.ToxicShow).Methods("GET")
	r.HandleFunc("/proxies/{proxy}/toxics/{toxic}", s.ToxicUpdate).Methods("POST")
	r.HandleFunc("/proxies/{proxy}/toxics/{toxic}", s.ToxicDelete).Methods("DELETE")
	r.HandleFunc("/version", s.Version).Methods("GET")
	return r
}

// stopProxies stops every proxy, closing their connections.
func (lp *linkProxy) stopProxies() {
	for _, p := range lp.api.Collection.Proxies() {
		p.Stop()
	}
}

// Close stops the API and every proxy. It returns an error if the API does
// not shut down within ctx.
func (lp *linkProxy) Close(ctx context.Context) error {
	err := lp.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("stop toxiproxy api: %w", err), lp.srv.Close())
	}
	<-lp.done
	lp.stopProxies()
	lp.logf.Close()
	return err
}
