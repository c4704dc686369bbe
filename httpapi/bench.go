package httpapi

import (
	"net/http"
	"net/http/pprof"
	"runtime/debug"

	"github.com/planb-chat/planb/adminapi"
)

// routesBench registers the admin endpoints `planb bench` uses: the engine
// benchmark (the ceiling planb's send rate is compared against) and the Go
// profiles of this node. Both need an admin token.
func (a *API) routesBench() {
	a.mux.HandleFunc("POST "+adminPrefix+"/bench/engine", a.admin(func(w http.ResponseWriter, r *http.Request) {
		var req adminapi.EngineBenchRequest
		if err := decode(r, &req); err != nil {
			writeError(w, a.log, err)
			return
		}
		rep, err := a.ops.BenchEngine(r.Context(), req)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, rep)
	}))
	// Collect garbage and return free memory to the OS, so that memory
	// readings before and after a change (idle long-polls) are comparable.
	a.mux.HandleFunc("POST "+adminPrefix+"/bench/gc", a.admin(func(w http.ResponseWriter, r *http.Request) {
		debug.FreeOSMemory()
		writeJSON(w, 200, struct{}{})
	}))
	// GET .../pprof/profile?seconds=N is a CPU profile; every other name is
	// one of runtime/pprof's profiles (heap, goroutine, allocs, ...).
	a.mux.HandleFunc("GET "+adminPrefix+"/bench/pprof/{name}", a.admin(func(w http.ResponseWriter, r *http.Request) {
		switch name := r.PathValue("name"); name {
		case "profile":
			pprof.Profile(w, r)
		case "trace":
			pprof.Trace(w, r)
		default:
			pprof.Handler(name).ServeHTTP(w, r)
		}
	}))
}
