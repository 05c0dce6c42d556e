package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/coder/websocket"

	"mediasvc/e2e/client"
)

// controlProbe is -control: sockets that carry only control traffic while
// the media viewers stream. Each is a viewer session's WebSocket (no
// PeerConnection) that sends an input event every interval; the service
// answers a viewer's input with an "error" (forbidden), so the time from
// send to that answer is the control round trip a person at the device
// feels: WebSocket read, decode, the app's check, the reply's write.
type controlProbe struct {
	mu    sync.Mutex
	rtts  []time.Duration
	sent  []time.Time // when each rtt's input was sent
	fails int
	errs  []string
}

func (c *controlProbe) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fails++
	if len(c.errs) < 5 {
		c.errs = append(c.errs, err.Error())
	}
}

// run opens n sockets over ramp and probes each every interval until stop.
func (c *controlProbe) run(ctx context.Context, hc *http.Client, o options, n int, interval time.Duration, stop time.Time) {
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := start.Add(time.Duration(int64(o.ramp) * int64(i) / int64(n)))
			sleepUntil(ctx, at)
			if err := c.socket(ctx, hc, o, interval, stop, time.Duration(i)*interval/time.Duration(n)); err != nil {
				c.fail(err)
			}
		}()
	}
	wg.Wait()
}

func (c *controlProbe) socket(ctx context.Context, hc *http.Client, o options, interval time.Duration, stop time.Time, phase time.Duration) error {
	si, err := client.CreateSession(ctx, hc, o.url, o.apiKey, o.device, "viewer")
	if err != nil {
		return err
	}
	u, err := client.WSURL(o.url, si, "")
	if err != nil {
		return err
	}
	ws, _, err := client.DialWS(ctx, u, nil)
	if err != nil {
		return err
	}
	defer ws.Close(websocket.StatusNormalClosure, "done")
	replies := make(chan time.Time, 4)
	var readErr error // set before replies is closed
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			_, b, err := ws.Read(rctx)
			if err != nil {
				readErr = err
				close(replies)
				return
			}
			var m struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(b, &m) == nil && m.Type == "error" {
				select {
				case replies <- time.Now():
				default:
				}
			}
		}
	}()
	input := []byte(`{"type":"input","action":"tap","x":10,"y":20}`)
	sleepUntil(ctx, time.Now().Add(phase))
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for time.Now().Before(stop) {
		sent := time.Now()
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		err := ws.Write(wctx, websocket.MessageText, input)
		if err == nil {
			select {
			case got, ok := <-replies:
				if !ok {
					// The service counts a viewer's refused input as a bad
					// message and closes the socket past ws.max_bad_messages;
					// a control run needs that raised on the server.
					err = fmt.Errorf("control socket closed by the server (raise ws.max_bad_messages for -control runs): %w", readErr)
				} else {
					c.mu.Lock()
					c.rtts = append(c.rtts, got.Sub(sent))
					c.sent = append(c.sent, sent)
					c.mu.Unlock()
				}
			case <-wctx.Done():
				err = fmt.Errorf("no answer to an input within 5s")
			}
		}
		wcancel()
		if err != nil {
			return err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// window returns the round trips of inputs sent between from and to.
func (c *controlProbe) window(from, to time.Time) []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Duration
	for i, s := range c.sent {
		if !s.Before(from) && s.Before(to) {
			out = append(out, c.rtts[i])
		}
	}
	return out
}

// trace writes the round trips of inputs sent between from and to, in the
// order they were recorded: "sent_unix_ns rtt_ns" per line.
func (c *controlProbe) trace(path string, from, to time.Time) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	c.mu.Lock()
	for i, s := range c.sent {
		if !s.Before(from) && s.Before(to) {
			fmt.Fprintf(w, "%d %d\n", s.UnixNano(), c.rtts[i].Nanoseconds())
		}
	}
	c.mu.Unlock()
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
