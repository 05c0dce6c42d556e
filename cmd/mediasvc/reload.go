package main

import (
	"context"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	noopmetric "go.opentelemetry.io/otel/metric/noop"

	"mediasvc/ports"
)

// liveKeys are the configuration keys a reload applies to the running
// service (a key matches an entry equal to it or starting with it and a
// dot). A change to any other key is logged as needing a restart and not
// applied. Sessions and streams in progress keep what they started with.
var liveKeys = []string{
	"log.level", "log.format",
	"auth", // API keys (and their grants), allow_open
	"http.allowed_hosts", "http.allowed_origins",
	"limits",                                           // quotas, creation rates, input budget and ICE limits (new sessions)
	"stream.min_bitrate_bps", "stream.max_bitrate_bps", // the bitrate policy of running captures
	"metrics.quality_interval",
	"webrtc.ice_servers", "webrtc.turn", // for new sessions
	"adb.serials", // the allow-list: devices appear or vanish at once
}

func isLive(key string) bool {
	for _, l := range liveKeys {
		if key == l || strings.HasPrefix(key, l+".") {
			return true
		}
	}
	return false
}

// configSource is where the configuration comes from, so it can be read
// again: the command line and the environment the process started with
// (the file named by -config is re-read; env and flags still override it).
type configSource struct {
	args, environ []string
	// path is the -config file, "" when none.
	path string
}

func (s *configSource) load() (Config, *koanf.Koanf, error) { return loadConfig(s.args, s.environ) }

// reloader re-reads the configuration on SIGHUP or a change of the file and
// applies what can change live. A configuration that does not validate is
// refused whole: the running one stays and one error log lists every bad
// field.
type reloader struct {
	src   *configSource
	log   func() *slog.Logger
	apply func(old, new Config)
	count metric.Int64Counter

	mu  sync.Mutex // serializes reloads
	cur Config
	k   *koanf.Koanf
}

// Reload results, the values of media_config_reloads_total's result label.
const (
	reloadOK      = "ok"               // every changed key applied (or nothing changed)
	reloadRestart = "restart_required" // the live keys applied, others wait for a restart
	reloadInvalid = "invalid"          // refused whole
)

func newReloader(src *configSource, cur Config, k *koanf.Koanf, meter metric.Meter, log func() *slog.Logger, apply func(old, new Config)) *reloader {
	if meter == nil {
		meter = noopmetric.NewMeterProvider().Meter("")
	}
	c, err := meter.Int64Counter("media_config_reloads",
		metric.WithDescription("Configuration reloads (SIGHUP or file change) by result: ok, restart_required (some changed keys need a restart and were not applied), invalid (refused whole)."))
	if err != nil {
		c, _ = noopmetric.NewMeterProvider().Meter("").Int64Counter("media_config_reloads")
	}
	for _, r := range []string{reloadOK, reloadRestart, reloadInvalid} {
		c.Add(context.Background(), 0, metric.WithAttributes(attribute.String("result", r)))
	}
	return &reloader{src: src, cur: cur, k: k, count: c, log: log, apply: apply}
}

// reload reads the configuration again and applies it; it returns the
// result and, for a refused one, why.
func (r *reloader) reload(ctx context.Context, trigger string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next, nk, err := r.src.load()
	if err != nil {
		r.count.Add(ctx, 1, metric.WithAttributes(attribute.String("result", reloadInvalid)))
		r.log().Error("configuration reload refused: the running configuration stays",
			"trigger", trigger, "file", r.src.path, "errors", strings.ReplaceAll(err.Error(), "\n", "; "))
		return reloadInvalid, err
	}
	live, restart := diffKeys(r.k, nk)
	result := reloadOK
	if len(restart) > 0 {
		// Keep the running values of the keys that need a restart, so
		// nothing is half-applied and the next reload still sees them as
		// pending.
		merged := nk.Copy()
		for _, key := range restart {
			if r.k.Exists(key) {
				_ = merged.Set(key, r.k.Get(key))
			} else {
				merged.Delete(key)
			}
		}
		var m Config
		if err := merged.UnmarshalWithConf("", &m, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
			r.count.Add(ctx, 1, metric.WithAttributes(attribute.String("result", reloadInvalid)))
			r.log().Error("configuration reload refused: the running configuration stays", "trigger", trigger, "errors", err.Error())
			return reloadInvalid, err
		}
		next, nk = m, merged
		result = reloadRestart
	}
	old := r.cur
	if len(live) > 0 {
		r.apply(old, next)
	}
	r.cur, r.k = next, nk
	r.count.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
	attrs := []any{"trigger", trigger, "applied", strings.Join(masked(live), ",")}
	if len(restart) > 0 {
		attrs = append(attrs, "restart_required", strings.Join(masked(restart), ","))
		r.log().Warn("configuration reloaded; some changed keys take effect only after a restart and were not applied", attrs...)
	} else {
		r.log().Info("configuration reloaded", attrs...)
	}
	return result, nil
}

// masked shortens API key names to their section: a key's name is not a
// secret, but the list stays short.
func masked(keys []string) []string {
	var out []string
	for _, k := range keys {
		if strings.HasPrefix(k, "auth.api_keys.") {
			k = "auth.api_keys"
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// diffKeys returns the keys whose value differs between a and b, split
// into live ones and ones that need a restart, each sorted.
func diffKeys(a, b *koanf.Koanf) (live, restart []string) {
	am, bm := a.All(), b.All()
	keys := make(map[string]bool, len(am))
	for k := range am {
		keys[k] = true
	}
	for k := range bm {
		keys[k] = true
	}
	for k := range keys {
		if reflect.DeepEqual(am[k], bm[k]) {
			continue
		}
		if isLive(k) {
			live = append(live, k)
		} else {
			restart = append(restart, k)
		}
	}
	sort.Strings(live)
	sort.Strings(restart)
	return live, restart
}

// run reloads on every signal from hup and, with a config file, on every
// change of it (debounced: editors write in steps), until ctx is done.
func (r *reloader) run(ctx context.Context, hup <-chan struct{}) error {
	changed := make(chan struct{}, 1)
	if r.src.path != "" {
		stop := r.watch(ctx, changed)
		defer stop()
	}
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			_, _ = r.reload(ctx, "sighup")
		case <-changed:
			debounce = time.After(200 * time.Millisecond)
		case <-debounce:
			debounce = nil
			_, _ = r.reload(ctx, "file")
		}
	}
}

// watch watches the config file (koanf's file provider, fsnotify on its
// directory) and signals changed on each write or replacement. When the
// watch ends (the file was removed) it starts again once the file is back.
// It returns the function that stops watching.
func (r *reloader) watch(ctx context.Context, changed chan<- struct{}) func() {
	var mu sync.Mutex
	var cur *file.File
	stopped := false
	var arm func()
	arm = func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		f := file.Provider(r.src.path)
		err := f.Watch(func(_ any, err error) {
			if err != nil {
				r.log().Warn("config file watch ended; retrying (SIGHUP reloads meanwhile)", "file", r.src.path, "err", err)
				go func() {
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
						arm()
					}
				}()
				return
			}
			select {
			case changed <- struct{}{}:
			default:
			}
		})
		if err != nil {
			go func() {
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
					arm()
				}
			}()
			return
		}
		cur = f
	}
	arm()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		if cur != nil {
			_ = cur.Unwatch()
		}
	}
}

// swapLimiter is a ports.RateLimiter whose limiter a reload replaces.
type swapLimiter struct {
	cur atomic.Pointer[ports.RateLimiter]
}

var _ ports.RateLimiter = (*swapLimiter)(nil)

func newSwapLimiter(l ports.RateLimiter) *swapLimiter {
	s := &swapLimiter{}
	s.set(l)
	return s
}

func (s *swapLimiter) set(l ports.RateLimiter) { s.cur.Store(&l) }

// Allow asks the current limiter.
func (s *swapLimiter) Allow(ctx context.Context, key string) error {
	return (*s.cur.Load()).Allow(ctx, key)
}

// handlerSwitch serves through the handler a reload put in place last.
type handlerSwitch struct{ cur atomic.Pointer[http.Handler] }

func newHandlerSwitch(h http.Handler) *handlerSwitch {
	s := &handlerSwitch{}
	s.set(h)
	return s
}

func (s *handlerSwitch) set(h http.Handler) { s.cur.Store(&h) }

func (s *handlerSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.cur.Load()).ServeHTTP(w, r)
}
