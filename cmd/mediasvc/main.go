// Command mediasvc streams Android device screens to browsers over WebRTC.
//
//	mediasvc [serve] [flags]     run the service (the default)
//	mediasvc config print [flags] print the effective configuration, secrets masked
//	mediasvc migrate up|status    apply or show the Redis keyspace migrations
//	mediasvc version              print the version
//
// Configuration comes from built-in defaults, then the YAML file given with
// -config, then MEDIASVC_* environment variables, then flags; see
// mediasvc.yaml for every key.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/metric"
	"golang.org/x/sync/errgroup"

	"mediasvc/adapters/adb"
	"mediasvc/adapters/demo"
	"mediasvc/adapters/httpapi"
	"mediasvc/adapters/mp4rec"
	"mediasvc/adapters/rtc"
	"mediasvc/adapters/telemetry"
	"mediasvc/adapters/transcode"
	"mediasvc/adapters/webhook"
	"mediasvc/app"
	"mediasvc/domain"
	"mediasvc/ports"
)

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args, environ []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, _, err := loadConfig(args, environ)
		if err != nil {
			fmt.Fprintf(stderr, "mediasvc: invalid configuration:\n%s\n", indent(err))
			return 2
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		src := &configSource{args: args, environ: environ, path: configPath(args)}
		if err := serve(ctx, cfg, stderr, src); err != nil {
			fmt.Fprintf(stderr, "mediasvc: %v\n", err)
			return 1
		}
		return 0
	case "config":
		if len(args) == 0 || args[0] != "print" {
			fmt.Fprintln(stderr, "usage: mediasvc config print [flags]")
			return 2
		}
		_, k, err := loadConfig(args[1:], environ)
		if k != nil {
			if perr := printConfig(k, stdout); perr != nil {
				fmt.Fprintln(stderr, perr)
				return 1
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "mediasvc: invalid configuration:\n%s\n", indent(err))
			return 2
		}
		return 0
	case "migrate":
		return migrate(args, environ, stdout, stderr)
	case "version":
		v := "devel"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		fmt.Fprintln(stdout, "mediasvc", v)
		return 0
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, "usage: mediasvc [serve] [-config file.yaml] [--http.addr host:port] ...\n       mediasvc config print\n       mediasvc migrate up|status\n       mediasvc version")
		return 0
	default:
		fmt.Fprintf(stderr, "mediasvc: unknown command %q (serve, config print, migrate, version)\n", cmd)
		return 2
	}
}

func indent(err error) string {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = "  - " + l
	}
	return strings.Join(lines, "\n")
}

// configPath returns the -config file named in args, "" when none.
func configPath(args []string) string {
	fs := flagSet("mediasvc")
	if fs.Parse(longFlags(args)) != nil {
		return ""
	}
	p, _ := fs.GetString("config")
	return p
}

// serve wires the adapters to the app and runs until ctx is done, then
// drains within cfg.HTTP.DrainTimeout. With src, SIGHUP and changes of
// the config file reload what can change live (reload.go).
func serve(ctx context.Context, cfg Config, logw io.Writer, src *configSource) error {
	logs := newLogSwitch(cfg.Log, logw)
	log := logs.logger()
	if cfg.Runtime.GCPercent > 0 {
		debug.SetGCPercent(cfg.Runtime.GCPercent)
	}
	if cfg.Runtime.MemoryLimitBytes > 0 {
		debug.SetMemoryLimit(cfg.Runtime.MemoryLimitBytes)
	}
	instance := cfg.Instance.ID
	if instance == "" {
		host, _ := os.Hostname()
		instance = fmt.Sprintf("%s-%d", host, os.Getpid())
	}

	// Metrics: one provider; each package records through its own meter.
	// Disabled, every meter is nil and records nothing.
	var tel *telemetry.Provider
	meter := func(string) metric.Meter { return nil }
	if cfg.Metrics.Enabled {
		p, err := telemetry.New()
		if err != nil {
			return err
		}
		tel = p
		defer func() { _ = tel.Shutdown(context.Background()) }()
		meter = func(name string) metric.Meter { return tel.Meter(name) }
	}

	// Traces: off (a nil tracer, every span a no-op) without an endpoint.
	tracer, stopTracing, err := newTracer(cfg.Tracing, instance, log.With("component", "tracing"))
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			log.Warn("tracing: flush at exit", "err", err)
		}
	}()

	be, err := newBackend(ctx, cfg, domain.Instance{ID: instance, URL: cfg.Instance.AdvertiseURL}, log, meter("mediasvc/redisstore"))
	if err != nil {
		return err
	}
	defer be.close()

	var sources []app.Source
	if cfg.Demo.Enabled {
		d, err := demo.New(demo.Options{})
		if err != nil {
			return fmt.Errorf("demo source: %w", err)
		}
		// With Redis, the demo device is owned by demo.owner, or by
		// whichever instance claims it first when that is empty.
		claim := cfg.Demo.Owner == "" || cfg.Demo.Owner == instance
		sources = append(sources, app.Source{Screen: d, Input: d, Keyframes: d, Claim: claim})
	}

	var adbSrc *adb.Source
	if cfg.ADB.Addr != "" {
		adbSrc, err = adb.New(adb.Options{
			Addr:            cfg.ADB.Addr,
			Serials:         cfg.ADB.Serials,
			Backend:         cfg.ADB.Backend,
			ScrcpyServer:    cfg.ADB.Scrcpy.Server,
			ScrcpyVersion:   cfg.ADB.Scrcpy.Version,
			ScrcpyAudio:     cfg.ADB.Scrcpy.Audio,
			Scrcpy:          cfg.ADB.Scrcpy.options(),
			OrientationPoll: orientationPoll(cfg.ADB.OrientationPoll),
			MaxWidth:        cfg.ADB.MaxWidth,
			MaxHeight:       cfg.ADB.MaxHeight,
			TimeLimit:       cfg.ADB.Screenrecord.TimeLimit,
			RestartLead:     cfg.ADB.Screenrecord.RestartLead,
			IdleFlush:       cfg.ADB.Screenrecord.IdleFlush,
			KeyframeTimeout: cfg.ADB.KeyframeTimeout,
			BitrateInterval: cfg.Stream.BitrateInterval,
			CommandTimeout:  cfg.ADB.CommandTimeout,
			RetryMin:        cfg.ADB.RetryMin,
			RetryMax:        cfg.ADB.RetryMax,
			PoolSize:        cfg.ADB.PoolSize,
			InputQueue:      cfg.ADB.InputQueue,
			Breaker: adb.BreakerOptions{
				Failures: cfg.ADB.Breaker.Failures, OpenFor: cfg.ADB.Breaker.OpenFor, Interval: cfg.ADB.Breaker.Interval,
			},
		}, log.With("component", "adb"))
		if err != nil {
			return fmt.Errorf("adb source: %w", err)
		}
		// With Redis, an instance may own the devices its own adb server sees.
		sources = append(sources, app.Source{Screen: adbSrc, Input: adbSrc, Files: adbSrc, Clipboard: adbSrc, Claim: true, Secondary: true})
	}

	transport, err := rtc.New(rtc.Config{
		ICEServers:       iceServers(cfg),
		NAT1To1IPs:       cfg.WebRTC.NAT1To1IPs,
		UDPPort:          cfg.WebRTC.UDPPort,
		TCPPort:          cfg.WebRTC.TCPPort,
		NoUDP:            !cfg.WebRTC.UDP,
		UDPPortMin:       uint16(cfg.WebRTC.UDPPortMin),
		UDPPortMax:       uint16(cfg.WebRTC.UDPPortMax),
		EphemeralPorts:   cfg.WebRTC.EphemeralPorts,
		SendBatch:        cfg.WebRTC.SendBatch,
		NoGSO:            !cfg.WebRTC.UDPGSO,
		NoIPv6:           !cfg.WebRTC.IPv6,
		GatherTimeout:    cfg.WebRTC.GatherTimeout,
		Interfaces:       cfg.WebRTC.Interfaces,
		LoopbackOnly:     cfg.loopbackICE(),
		MTU:              cfg.WebRTC.MTU,
		KeyframeInterval: cfg.Stream.KeyframeInterval,
		RingHistory:      cfg.Stream.RingHistory,
		RingMaxBytes:     cfg.Stream.RingMaxBytes,
		ViewerBudget: rtc.ViewerBudget{
			RetransmitRate:   cfg.Stream.ViewerRetransmitRate,
			RetransmitBytes:  cfg.Stream.ViewerRetransmitBytes,
			RTCPRate:         cfg.Stream.ViewerRTCPRate,
			KeyframeInterval: cfg.Stream.ViewerKeyframeInterval,
		},
		Meter: meter("mediasvc/rtc"),
	}, log.With("component", "rtc"))
	if err != nil {
		return fmt.Errorf("webrtc transport: %w", err)
	}
	defer transport.Close()

	// Renditions for viewers that cannot take a device's stream (Firefox
	// without OpenH264 offers VP8 only): with no usable ffmpeg such a
	// viewer gets 406 no_common_codec.
	var transcoders ports.Transcoders
	if cfg.Transcode.Enabled {
		tcs, err := transcode.New(ctx, transcode.Config{FFmpeg: cfg.Transcode.FFmpeg, BitrateBps: cfg.Transcode.BitrateBps}, log.With("component", "transcode"))
		if err != nil {
			log.Warn("no transcoder: viewers without H.264 get no_common_codec", "err", err)
		} else {
			transcoders = tcs
			log.Info("transcoder ready", "ffmpeg", cfg.Transcode.FFmpeg, "renditions", tcs.Renditions())
		}
	}

	svc := app.New(app.Config{
		Instance:        instance,
		SessionTTL:      cfg.Session.TTL,
		Quota:           tunables(cfg).Quota,
		ICE:             tunables(cfg).ICE,
		Candidates:      domain.CandidatePolicy{AllowLoopback: cfg.loopbackListener()},
		InputRate:       cfg.Limits.InputRate,
		InputBurst:      cfg.Limits.InputBurst,
		QualityInterval: cfg.Metrics.QualityInterval,
		Hub: app.HubConfig{
			Grace:   cfg.Stream.Grace,
			Capture: domain.CaptureOptions{BitrateBps: cfg.Stream.BitrateBps},
			Bitrate: tunables(cfg).Bitrate,
		},
	}, app.Deps{
		Store:       be.store,
		Sources:     sources,
		Transport:   transport,
		Transcoders: transcoders,
		Stills:      transcode.NewStills(cfg.Transcode.FFmpeg, 0),
		Walls:       transport,
		OwnerLimit:  be.ownerLimit,
		GlobalLimit: be.globalLimit,
		Healthy:     be.healthy,
		Instances:   be.instances,
		Bus:         be.bus,
		Leases:      be.leases,
		Meter:       meter("mediasvc/app"),
		Tracer:      tracer,
	}, log)
	be.onUp = svc.Resync
	if qr, ok := be.store.(quotaReporter); ok {
		if err := registerQuotaMetrics(meter("mediasvc/quota"), qr, svc.Quota, svc.Devices, log.With("component", "quota")); err != nil {
			return err
		}
	}

	// The device farm: control handoff, reservations, audit, webhooks.
	var notifier ports.Notifier
	var hooks *webhook.Notifier
	if len(cfg.Webhooks.URLs) > 0 {
		hooks, err = webhook.New(webhook.Options{
			URLs: cfg.Webhooks.URLs, Secret: cfg.Webhooks.Secret, Queue: cfg.Webhooks.Queue,
			Attempts: cfg.Webhooks.Attempts, Logger: log.With("component", "webhook"),
		})
		if err != nil {
			return err
		}
		notifier = hooks
	}
	farm := app.NewFarm(app.FarmConfig{
		Instance: instance,
		Control:  domain.ControlPolicy{MaxControllers: cfg.Control.MaxControllers, Grace: cfg.Control.Grace},
		Reservations: domain.ReservationPolicy{
			Hide: cfg.Reservations.Hide, MaxDuration: cfg.Reservations.MaxDuration, MaxAhead: cfg.Reservations.MaxAhead,
		},
		RecordText: cfg.Audit.RecordText,
		GroupLimit: svc.CountedLimiter(be.groupLimit, "group_input"),
	}, be.farm, be.audit, notifier, nil, log.With("component", "farm"))
	svc.UseFarm(farm)

	// Recordings: MP4 files of device streams under recordings.dir.
	var recorder *app.Recorder
	if cfg.Recordings.Enabled {
		store, err := mp4rec.Open(cfg.Recordings.Dir, log.With("component", "recordings"))
		if err != nil {
			return err
		}
		recorder = svc.NewRecorder(store, app.RecorderConfig{Limits: domain.RecordingLimits{
			MaxDuration: cfg.Recordings.MaxDuration, MaxTotalBytes: cfg.Recordings.MaxTotalBytes,
			MaxConcurrent: cfg.Recordings.MaxConcurrent,
		}}, log.With("component", "recordings"))
	}

	// The HTTP API is rebuilt on a reload that changes who may use it
	// (keys, hosts, origins); sockets stay with the server that accepted
	// them, and Shutdown reaches every one.
	var apiMu sync.Mutex
	var apis []*httpapi.Server
	buildAPI := func(cfg Config) (*httpapi.Server, error) {
		var tokens httpapi.TokenVerifier
		if v, err := cfg.tokenVerifier(); err != nil {
			return nil, fmt.Errorf("auth.jwt: %w", err)
		} else if v != nil {
			tokens = v
		}
		api := httpapi.New(httpapi.Config{
			APIKeys:        cfg.Auth.APIKeys,
			Keys:           cfg.apiKeys(),
			Tokens:         tokens,
			AllowedHosts:   cfg.allowedHosts(cfg.HTTP.Addr),
			AllowedOrigins: cfg.HTTP.AllowedOrigins,
			MaxBodyBytes:   cfg.HTTP.MaxBodyBytes,
			PublicURL:      cfg.HTTP.PublicURL,
			TrustProxy:     cfg.HTTP.TrustProxy,
			StatsInterval:  cfg.WS.StatsInterval,
			WebSocket: httpapi.WebSocketConfig{
				MaxMessageBytes: cfg.WS.MaxMessageBytes,
				SendQueue:       cfg.WS.SendQueue,
				PingInterval:    cfg.WS.PingInterval,
				WriteTimeout:    cfg.WS.WriteTimeout,
				MaxBadMessages:  cfg.WS.MaxBadMessages,
			},
			Meter:      meter("mediasvc/httpapi"),
			Farm:       farm,
			Admins:     cfg.Farm.Admins,
			Recordings: recordings(recorder),
			Walls:      walls{svc},
		}, svc, log.With("component", "http"))
		if tel != nil && cfg.Metrics.Addr == "" {
			// With API keys, scrapers present one like any REST client.
			api.MountAuthenticated("/metrics", tel.Handler())
		}
		apiMu.Lock()
		apis = append(apis, api)
		apiMu.Unlock()
		return api, nil
	}
	firstAPI, err := buildAPI(cfg)
	if err != nil {
		return err
	}
	apiHandler := newHandlerSwitch(firstAPI.Handler())
	shutdownAPIs := func(ctx context.Context, reason string) {
		apiMu.Lock()
		all := slices.Clone(apis)
		apiMu.Unlock()
		var wg sync.WaitGroup
		for _, a := range all {
			wg.Go(func() { a.Shutdown(ctx, reason) })
		}
		wg.Wait()
	}

	var metricsLn net.Listener
	var metricsSrv *http.Server
	var metricsGuard *handlerSwitch
	var metricsMux *http.ServeMux
	metricsHosts := func(cfg Config) []string {
		return append(cfg.allowedHosts(cfg.HTTP.Addr), cfg.allowedHosts(cfg.Metrics.Addr)...)
	}
	if tel != nil {
		if cfg.Metrics.Addr != "" {
			metricsLn, err = net.Listen("tcp", cfg.Metrics.Addr)
			if err != nil {
				return fmt.Errorf("listen for metrics on %s: %w", cfg.Metrics.Addr, err)
			}
			defer metricsLn.Close()
			metricsMux = http.NewServeMux()
			metricsMux.Handle("GET /metrics", tel.Handler())
			// The metrics listener answers to the same names as the API
			// (and its own address): a rebound page reads nothing here either.
			metricsGuard = newHandlerSwitch(httpapi.NewHostPolicy(metricsHosts(cfg)).Guard(metricsMux))
			metricsSrv = &http.Server{Handler: metricsGuard, ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
				ReadTimeout: cfg.HTTP.ReadTimeout, WriteTimeout: cfg.HTTP.WriteTimeout, IdleTimeout: cfg.HTTP.IdleTimeout,
				MaxHeaderBytes: cfg.HTTP.MaxHeaderBytes}
			log.Info("metrics listening", "addr", metricsLn.Addr().String(), "url", "http://"+metricsLn.Addr().String()+"/metrics")
		}
	}

	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTP.Addr, err)
	}
	srv := &http.Server{
		Handler: apiHandler,
		// Slow or idle clients are cut: headers within read_header_timeout,
		// the whole request within read_timeout, the reply within
		// write_timeout. A WebSocket is exempt once upgraded (net/http
		// clears the deadlines of a hijacked connection).
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    cfg.HTTP.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("mediasvc listening", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String()+"/",
		"instance", instance, "store", cfg.Store.Backend, "auth", cfg.hasAuth(), "demo", cfg.Demo.Enabled, "adb", cfg.ADB.Addr)

	if cfg.Debug.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.Debug.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}

	g, gctx := errgroup.WithContext(ctx)
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()

	if src != nil {
		_, k, err := src.load()
		if err != nil {
			return fmt.Errorf("read configuration again: %w", err)
		}
		apply := func(old, cfg Config) {
			if cfg.Log != old.Log {
				logs.set(cfg.Log)
			}
			if !reflect.DeepEqual(cfg.Auth, old.Auth) || !slices.Equal(cfg.HTTP.AllowedHosts, old.HTTP.AllowedHosts) ||
				!slices.Equal(cfg.HTTP.AllowedOrigins, old.HTTP.AllowedOrigins) {
				if api, err := buildAPI(cfg); err != nil {
					log.Error("reload the HTTP API", "err", err)
				} else {
					apiHandler.set(api.Handler())
				}
				if metricsGuard != nil {
					metricsGuard.set(httpapi.NewHostPolicy(metricsHosts(cfg)).Guard(metricsMux))
				}
			}
			if cfg.Limits != old.Limits {
				if err := be.setLimits(cfg.Limits); err != nil {
					log.Error("reload creation rate limits", "err", err)
				}
			}
			if tunables(cfg) != tunables(old) {
				svc.Reconfigure(tunables(cfg))
			}
			if !reflect.DeepEqual(cfg.WebRTC.ICEServers, old.WebRTC.ICEServers) || !reflect.DeepEqual(cfg.WebRTC.TURN, old.WebRTC.TURN) {
				transport.SetICEServers(iceServers(cfg))
			}
			if adbSrc != nil && !slices.Equal(cfg.ADB.Serials, old.ADB.Serials) {
				adbSrc.SetSerials(runCtx, cfg.ADB.Serials)
			}
		}
		rl := newReloader(src, cfg, k, meter("mediasvc/config"), func() *slog.Logger { return log }, apply)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		hupped := make(chan struct{}, 1)
		g.Go(func() error {
			for {
				select {
				case <-runCtx.Done():
					return nil
				case <-hup:
					select {
					case hupped <- struct{}{}:
					default:
					}
				}
			}
		})
		g.Go(func() error { return rl.run(runCtx, hupped) })
	}
	g.Go(func() error { return svc.Run(runCtx) })
	if metricsSrv != nil {
		g.Go(func() error {
			if err := metricsSrv.Serve(metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics server: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error { return svc.ServeBus(runCtx) })
	g.Go(func() error { return farm.Run(runCtx) })
	g.Go(func() error { farm.WatchDevices(runCtx, 2*time.Second, svc.Devices); return nil })
	if hooks != nil {
		g.Go(func() error { hooks.Run(runCtx); return nil })
	}
	g.Go(func() error { return svc.RunOwnership(runCtx, cfg.Instance.LeaseTTL) })
	for _, loop := range be.run {
		g.Go(func() error { return loop(runCtx) })
	}
	if adbSrc != nil {
		// Device tracking retries with backoff while the adb server is
		// away; it never makes the service unready.
		g.Go(func() error { return adbSrc.Run(runCtx) })
	}
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("draining", "timeout", cfg.HTTP.DrainTimeout, "shutdown_delay", cfg.HTTP.ShutdownDelay)
		dctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.DrainTimeout)
		defer cancel()
		start := time.Now()
		// Readiness turns 503 and creation is refused first, and stays so
		// for shutdown_delay so load balancers see it; then every socket
		// hears bye, peers close, captures stop; then HTTP ends.
		svc.StopAccepting()
		select {
		case <-time.After(cfg.HTTP.ShutdownDelay):
		case <-dctx.Done():
		}
		var errs []error
		if err := svc.Drain(dctx, "shutdown"); err != nil {
			errs = append(errs, err)
		}
		shutdownAPIs(dctx, "shutdown")
		if err := srv.Shutdown(dctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			_ = srv.Close()
		}
		if metricsSrv != nil {
			_ = metricsSrv.Shutdown(dctx)
		}
		stopRun()
		log.Info("drained", "took", time.Since(start).Round(time.Millisecond))
		return errors.Join(errs...)
	})
	return g.Wait()
}

// tunables are the settings of cfg the app may change while it runs.
func tunables(cfg Config) app.Tunables {
	return app.Tunables{
		Quota: domain.Quota{
			Total: cfg.Limits.SessionsTotal, PerDevice: cfg.Limits.SessionsPerDevice, PerOwner: cfg.Limits.SessionsPerOwner,
		},
		ICE:        domain.ICELimits{MaxCandidates: cfg.Limits.MaxCandidates, MaxCandidateLen: cfg.Limits.MaxCandidateBytes},
		InputRate:  cfg.Limits.InputRate,
		InputBurst: cfg.Limits.InputBurst,
		Bitrate: domain.BitratePolicy{
			MinBps: cfg.Stream.MinBitrateBps, MaxBps: cfg.Stream.MaxBitrateBps, Interval: cfg.Stream.BitrateInterval,
			DecreaseLoss: domain.DefaultBitratePolicy.DecreaseLoss, IncreaseLoss: domain.DefaultBitratePolicy.IncreaseLoss,
			IncreaseRTT: domain.DefaultBitratePolicy.IncreaseRTT,
		},
		QualityInterval: cfg.Metrics.QualityInterval,
	}
}

// iceServers are cfg's STUN/TURN servers: webrtc.ice_servers, then
// webrtc.turn (whose secret, if any, mints each session's credentials).
func iceServers(cfg Config) []domain.ICEServer {
	servers := make([]domain.ICEServer, 0, len(cfg.WebRTC.ICEServers)+1)
	for _, s := range cfg.WebRTC.ICEServers {
		servers = append(servers, domain.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	if t := cfg.WebRTC.TURN; len(t.URLs) > 0 {
		servers = append(servers, domain.ICEServer{URLs: slices.Clone(t.URLs), Username: t.Username, Credential: t.Credential, Secret: t.Secret})
	}
	return servers
}

// servePprof serves the runtime profiles on their own loopback listener
// and returns the function that stops it.
func servePprof(addr string, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for pprof on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof server", "err", err)
		}
	}()
	log.Info("pprof listening", "addr", ln.Addr().String())
	return func() { _ = srv.Close(); <-done }, nil
}

// orientationPoll maps the config's 0 ("never") to the adapter's negative.
func orientationPoll(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// recordings is r as the HTTP adapter's interface, nil when recordings are
// off (a nil *app.Recorder in the interface would not be nil).
func recordings(r *app.Recorder) httpapi.Recordings {
	if r == nil {
		return nil
	}
	return r
}

// walls opens the service's device walls for the HTTP adapter.
type walls struct{ svc *app.Service }

func (w walls) OpenWall(ctx context.Context, id string, visible func(context.Context, domain.Device) bool, notify func(domain.WallEvent)) (httpapi.WallConn, error) {
	wall, err := w.svc.OpenWall(ctx, app.WallOptions{ID: id, Visible: visible, Notify: notify})
	if err != nil {
		return nil, err
	}
	return wall, nil
}
