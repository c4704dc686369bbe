package drill

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/planb-chat/planb/failover"
)

// Endpoint is one data center's client URL.
type Endpoint struct {
	Name string
	URL  string
}

// workload is a set of drill users joined to a set of drill rooms, each user
// talking through the failover client and starting at its own data center.
// It only ever touches the users and rooms it created.
type workload struct {
	endpoints []Endpoint
	users     []id.UserID
	tokens    []string
	clients   []*mautrix.Client
	rooms     []id.RoomID
	run       string // unique per drill: user names, room names, txnIds

	mu   sync.Mutex // guards acks and errs
	acks []Ack
	errs map[string]int
	wg   sync.WaitGroup
}

// client returns a failover client starting at endpoint first.
func (w *workload) client(userID id.UserID, token string, first int) (*mautrix.Client, error) {
	var eps []failover.Endpoint
	for i := range w.endpoints {
		e := w.endpoints[(first+i)%len(w.endpoints)]
		u, err := url.Parse(e.URL)
		if err != nil {
			return nil, fmt.Errorf("data center %s: %w", e.Name, err)
		}
		eps = append(eps, failover.Endpoint{Name: e.Name, URL: u})
	}
	tr, err := failover.New(eps, failover.Options{RetryBudget: 60 * time.Second, AttemptTimeout: 15 * time.Second, Cooldown: 3 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("failover client: %w", err)
	}
	cli, err := mautrix.NewClient(eps[0].URL.String(), userID, token)
	if err != nil {
		return nil, fmt.Errorf("matrix client: %w", err)
	}
	cli.Client = &http.Client{Transport: tr}
	return cli, nil
}

// setup registers the drill's users (spread over the data centers) and
// creates its rooms with every user joined.
func (w *workload) setup(ctx context.Context, users, rooms int) error {
	for i := 0; i < users; i++ {
		anon, err := w.client("", "", i%len(w.endpoints))
		if err != nil {
			return err
		}
		resp, err := anon.RegisterDummy(ctx, &mautrix.ReqRegister[any]{
			Username: fmt.Sprintf("drill-%s-%d", w.run, i), Password: "drill-" + w.run + "-" + strconv.Itoa(i)})
		if err != nil {
			return fmt.Errorf("register drill user %d: %w", i, err)
		}
		cli, err := w.client(resp.UserID, resp.AccessToken, i%len(w.endpoints))
		if err != nil {
			return err
		}
		w.users, w.tokens, w.clients = append(w.users, resp.UserID), append(w.tokens, resp.AccessToken), append(w.clients, cli)
	}
	for r := 0; r < rooms; r++ {
		owner := w.clients[r%users]
		var invite []id.UserID
		for i, u := range w.users {
			if i != r%users {
				invite = append(invite, u)
			}
		}
		resp, err := owner.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: fmt.Sprintf("drill %s room %d", w.run, r),
			Invite: invite})
		if err != nil {
			return fmt.Errorf("create drill room %d: %w", r, err)
		}
		w.rooms = append(w.rooms, resp.RoomID)
		for i, cli := range w.clients {
			if cli == owner {
				continue
			}
			if _, err := cli.JoinRoomByID(ctx, resp.RoomID); err != nil {
				return fmt.Errorf("user %d joins drill room %d: %w", i, r, err)
			}
		}
	}
	return nil
}

// start sends from every user into every room, one message per interval
// each, until ctx ends.
func (w *workload) start(ctx context.Context, interval time.Duration, partitionOf func(string) int) {
	w.errs = map[string]int{}
	for ci, cli := range w.clients {
		for ri, room := range w.rooms {
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				tick := time.NewTicker(interval)
				defer tick.Stop()
				for n := 0; ctx.Err() == nil; n++ {
					tag := fmt.Sprintf("%s-u%d-r%d-m%d", w.run, ci, ri, n)
					sctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
					resp, err := cli.SendMessageEvent(sctx, room, event.EventMessage,
						map[string]any{"msgtype": "m.text", "body": "drill " + tag, "org.planb.drill": tag, sentField: time.Now().UnixMicro()},
						mautrix.ReqSendEvent{TransactionID: tag})
					cancel()
					w.mu.Lock()
					if err != nil {
						w.errs[errKind(err)]++
					} else {
						w.acks = append(w.acks, Ack{Room: string(room), Partition: partitionOf(string(room)), Tag: tag,
							EventID: string(resp.EventID), At: time.Now()})
					}
					w.mu.Unlock()
					select {
					case <-ctx.Done():
					case <-tick.C:
					}
				}
			}()
		}
	}
}

func (w *workload) snapshot() ([]Ack, map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	errs := make(map[string]int, len(w.errs))
	for k, v := range w.errs {
		errs[k] = v
	}
	return append([]Ack(nil), w.acks...), errs
}

// errKind names a client-visible error for the report.
func errKind(err error) string {
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.RespError != nil && he.Response != nil {
		return fmt.Sprintf("%d %s", he.Response.StatusCode, he.RespError.ErrCode)
	}
	if errors.As(err, &he) && he.Response != nil {
		return strconv.Itoa(he.Response.StatusCode)
	}
	if errors.Is(err, failover.ErrBudgetExhausted) {
		return "no data center answered in time"
	}
	if errors.Is(err, failover.ErrOutcomeUnknown) {
		return "outcome unknown"
	}
	return "transport"
}

// readBack reads every drill room from one data center (oldest first).
func (w *workload) readBack(ctx context.Context, ep Endpoint) (map[string]Stored, error) {
	cli, err := mautrix.NewClient(ep.URL, w.users[0], w.tokens[0])
	if err != nil {
		return nil, err
	}
	cli.Client = &http.Client{Timeout: 30 * time.Second}
	out := map[string]Stored{}
	for _, room := range w.rooms {
		var st Stored
		from := ""
		for {
			resp, err := cli.Messages(ctx, room, from, "", mautrix.DirectionForward, nil, 1000)
			if err != nil {
				return nil, fmt.Errorf("read %s at %s: %w", room, ep.Name, err)
			}
			for _, ev := range resp.Chunk {
				if ev.Type != event.EventMessage {
					continue
				}
				tag, _ := ev.Content.Raw["org.planb.drill"].(string)
				st.EventIDs, st.Tags = append(st.EventIDs, string(ev.ID)), append(st.Tags, tag)
			}
			if resp.End == "" || len(resp.Chunk) == 0 {
				break
			}
			from = resp.End
		}
		out[string(room)] = st
	}
	return out, nil
}
