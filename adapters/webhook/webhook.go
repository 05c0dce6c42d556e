// Package webhook tells outside systems about farm events: each event is
// POSTed as JSON to every configured URL, signed with HMAC-SHA256, and
// retried with exponential backoff. Notify never blocks its caller: each
// URL has its own bounded queue and its own sender, so one slow or dead
// receiver delays no other, and an event that finds a queue full is
// dropped and counted.
//
// Signature: the header X-Mediasvc-Signature is "t=<unix seconds>,v1=<hex>"
// where hex is HMAC-SHA256(secret, "<t>.<body>"). A receiver recomputes it
// and refuses a t too far from its clock, so a captured request cannot be
// replayed later. X-Mediasvc-Event carries the event type and
// X-Mediasvc-Delivery its id, the same across retries.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mediasvc/domain"
	"mediasvc/ports"
)

var _ ports.Notifier = (*Notifier)(nil)

// Options configures a Notifier.
type Options struct {
	// URLs receive every event; http or https.
	URLs []string
	// Secret signs every request; required.
	Secret string
	// Queue is how many events wait per URL before new ones are dropped;
	// 256 when zero.
	Queue int
	// Attempts is how often one event is tried per URL; 5 when zero.
	Attempts int
	// Backoff is the pause before the first retry, doubled (with jitter)
	// before each next one up to MaxBackoff; 500 ms and 30 s when zero.
	Backoff, MaxBackoff time.Duration
	// Timeout bounds one request; 5 s when zero.
	Timeout time.Duration
	// Client sends the requests; a plain http.Client when nil.
	Client *http.Client
	Logger *slog.Logger
}

// Notifier posts farm events to webhooks. Make it with New, start its
// senders with Run; Notify may be called before, during and after Run.
type Notifier struct {
	opts   Options
	log    *slog.Logger
	queues []chan domain.Notice

	delivered, failed, dropped atomic.Uint64
}

// New checks opts and returns a Notifier. It returns an error wrapping
// domain.ErrInvalidRequest naming every bad URL, or a missing secret.
func New(opts Options) (*Notifier, error) {
	var errs []error
	if opts.Secret == "" {
		errs = append(errs, errors.New("webhooks: a secret is required to sign the requests"))
	}
	for _, raw := range opts.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("webhooks: %q is not an http(s) URL", raw))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", domain.ErrInvalidRequest, err)
	}
	if opts.Queue <= 0 {
		opts.Queue = 256
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{opts: opts, log: opts.Logger}
	for range opts.URLs {
		n.queues = append(n.queues, make(chan domain.Notice, opts.Queue))
	}
	return n, nil
}

// Notify queues ev for every URL without blocking; where a queue is full
// the event is dropped for that URL and counted.
func (n *Notifier) Notify(ev domain.Notice) {
	for i, q := range n.queues {
		select {
		case q <- ev:
		default:
			n.dropped.Add(1)
			n.log.Warn("webhook queue full, event dropped", "url", n.opts.URLs[i], "type", ev.Type, "device_id", ev.Device)
		}
	}
}

// Stats returns how many deliveries succeeded, failed after every
// attempt, and were dropped (queue full, or still queued when Run ended).
func (n *Notifier) Stats() (delivered, failed, dropped uint64) {
	return n.delivered.Load(), n.failed.Load(), n.dropped.Load()
}

// Run sends queued events, one sender goroutine per URL, until ctx is
// done; it then waits for the senders (a request in flight is cancelled)
// and counts what was left queued as dropped.
func (n *Notifier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i, q := range n.queues {
		wg.Go(func() { n.send(ctx, n.opts.URLs[i], q) })
	}
	wg.Wait()
	for _, q := range n.queues {
		n.dropped.Add(uint64(len(q)))
	}
}

func (n *Notifier) send(ctx context.Context, target string, q <-chan domain.Notice) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-q:
			if err := n.deliver(ctx, target, ev); err != nil {
				if ctx.Err() != nil {
					n.dropped.Add(1)
					return
				}
				n.failed.Add(1)
				n.log.Warn("webhook delivery failed", "url", target, "type", ev.Type, "device_id", ev.Device, "id", ev.ID, "err", err)
				continue
			}
			n.delivered.Add(1)
		}
	}
}

// errPermanent marks a refusal that retrying cannot fix (a 4xx other than
// 408 and 429).
var errPermanent = errors.New("refused")

// deliver posts ev to target, retrying with backoff.
func (n *Notifier) deliver(ctx context.Context, target string, ev domain.Notice) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	pause := n.opts.Backoff
	for attempt := 1; ; attempt++ {
		err = n.post(ctx, target, ev, body)
		if err == nil || errors.Is(err, errPermanent) || attempt == n.opts.Attempts {
			return err
		}
		wait := pause/2 + rand.N(pause/2+1)
		pause = min(pause*2, n.opts.MaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (n *Notifier) post(ctx context.Context, target string, ev domain.Notice, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %w", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mediasvc-webhook")
	req.Header.Set("X-Mediasvc-Event", string(ev.Type))
	req.Header.Set("X-Mediasvc-Delivery", ev.ID)
	req.Header.Set("X-Mediasvc-Signature", Sign(n.opts.Secret, time.Now(), body))
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return fmt.Errorf("%w with %s", errPermanent, resp.Status)
	}
	return fmt.Errorf("answered %s", resp.Status)
}

// Sign returns the X-Mediasvc-Signature value for body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

// Verify checks a signature header against body, refusing one made more
// than tolerance away from now. Receivers written in Go may use it.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts, sig string
	for part := range bytes.SplitSeq([]byte(header), []byte(",")) {
		k, v, _ := bytes.Cut(part, []byte("="))
		switch string(k) {
		case "t":
			ts = string(v)
		case "v1":
			sig = string(v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("webhook signature: malformed header")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook signature: made %s away from now", d.Round(time.Second))
	}
	if !hmac.Equal([]byte(sig), []byte(mac(secret, ts, body))) {
		return errors.New("webhook signature: mismatch")
	}
	return nil
}

func mac(secret, ts string, body []byte) string {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte("."))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}
