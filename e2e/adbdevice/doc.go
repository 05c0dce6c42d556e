// Package adbdevice is an emulated Android device at the ADB transport
// protocol level, for tests: the real adb server (Debian's adb 29.0.6)
// connects to it with `adb connect 127.0.0.1:PORT` as it would to a phone
// over TCP/IP, and runs shell commands, exec streams, sync transfers and
// forwarded sockets on it.
//
// # Use
//
//	srv, err := adbdevice.StartServer(ctx, "")   // private adb server: own port, HOME, TMPDIR
//	defer srv.Close()                              // adb kill-server
//	dev, err := adbdevice.New(adbdevice.Options{Model: "Pixel_7"})
//	addr, err := dev.Start(ctx)                    // 127.0.0.1:PORT, outside 5555–5585
//	defer dev.Close()
//	err = srv.Connect(ctx, addr, "device")         // adb connect + wait for the state
//	// mediasvc talks to srv.Addr(); the device's serial is addr.
//	taps, err := dev.WaitInputs(ctx, 1)            // ["tap 10 20"]
//
// In a test, StartTestServer(t) and PlugTestDevice(t, srv, opts) do the
// same and clean up at the end of the test.
//
// # What it serves
//
//   - CNXN answered with CNXN (banner device::ro.product.name=…;
//     ro.product.model=…;ro.product.device=…;features=shell_v2,cmd), or
//     AUTH then CNXN (AuthAccept), or AUTH forever (AuthReject,
//     FaultUnauthorized: adb lists it "unauthorized").
//   - exec:CMD (raw; stdout and stderr both go to the stream, as adbd's
//     raw subprocess does), shell:CMD (v1, raw), shell,v2,…:CMD (shell
//     protocol framing, exit status). The command line is split with POSIX
//     quoting (SplitCommandLine) and may chain commands with ;, && and ||;
//     VAR=value prefixes are passed to registered commands. An empty CMD is
//     an interactive shell that runs each line read from stdin (no prompt,
//     no echo) until EOF, close-stdin or exit.
//   - Commands: screenrecord (see below), wm size|density, getprop [NAME],
//     input [SOURCE] [-d ID] tap|swipe|draganddrop|keyevent|text|press|
//     roll|motionevent|keycombination|scroll (scroll from SDK 33;
//     validated, recorded: Inputs, WaitInputs), screencap [-p] (a PNG of
//     the display in its orientation), dumpsys window displays (init= and
//     cur= sizes, the rotation), cmd package install -S SIZE (the APK
//     streamed on stdin, checked to be a zip with AndroidManifest.xml;
//     Success or Failure [CODE: …]; Installs), echo, true, false, exit,
//     sleep, cat, ls, rm, id, whoami,
//     and any command registered with HandleCommand (e.g. app_process for
//     an emulated scrcpy server). Others fail with status 127.
//   - sync: SEND (push), RECV (pull), STAT (v1), LIST, QUIT, on an
//     in-memory file system (Files, WriteFile). /data/local/tmp, /sdcard
//     and a few others are directories; a push outside /data/local/tmp,
//     /sdcard and /storage/emulated/0 (".." resolved) fails "Permission
//     denied", as for adbd's shell user. stat_v2/ls_v2/sendrecv_v2 are not
//     implemented (and not advertised).
//   - localabstract:NAME and tcp:PORT, bridged to handlers registered with
//     HandleAbstract and HandleTCP, or accepted in order from a
//     ListenAbstract listener (what `adb forward` opens); refused (CLSE)
//     without one.
//
// # scrcpy
//
// EnableScrcpy registers app_process so that `CLASSPATH=JAR app_process /
// com.genymobile.scrcpy.Server VERSION key=value…` (after JAR was pushed)
// runs an emulated scrcpy server speaking the scrcpy 3.x protocol
// (ScrcpyVersion, "3.3.4", by default; the version argument must match):
// forward tunnel only, localabstract:scrcpy_SCID, video/audio/control
// sockets in that order, dummy byte on the first socket at accept, 64-byte
// device name, codec meta (h264, width, height), 12-byte packet headers
// (config and key-frame flags in the PTS), a config packet then an IDR at
// start, on RESET_VIDEO and on rotation (FaultRotated: the portrait clip,
// a new video size and no new codec meta); the audio socket streams the
// demo Opus (codec id opus, OpusHead config packet, 20 ms packets; codec
// id 0, "disabled", without audio; codec id 1, "error", and the server
// stops, for an unknown audio_encoder). Options are checked as
// Options.parse does (log_level, codecs, video_codec_options, numbers;
// display_id other than 0 is not found). The controller does what
// scrcpy 3.3.4's does and Inputs records the result: positions whose
// video size is not the current one are dropped (PositionMapper; see
// Ignored) and the rest scaled to the display in its orientation; up to
// 10 pointers (PointersState) with ACTION_POINTER_DOWN/UP and their
// index; scroll in 3.3's fixed point; keys with repeat and meta; text of
// any length with what the virtual keyboard cannot type skipped;
// SET_CLIPBOARD sets the device's clipboard (acknowledged when it has a
// sequence, not echoed) and SetClipboard pushes a CLIPBOARD message to
// clients with clipboard_autosync; log lines (log_level, "Video capture
// reset" per RESET_VIDEO) are written from the controller and block it
// while the host does not read them. Inputs look like
// "scrcpy touch down X Y id=N", "scrcpy touch pointer_down 1 X Y id=N",
// "scrcpy key down 31 repeat=2 meta=0x3000", "scrcpy text hi",
// "scrcpy scroll X Y h=0 v=-1", "scrcpy set_clipboard TEXT (paste)",
// "scrcpy reset_video", …
//
// # screenrecord
//
// Flags as the real one: --output-format mp4|h264 (frames are not
// emulated), --size WxH (validated, recorded, the clip is not scaled),
// --bit-rate N|NK|NM (100k–200M, recorded), --time-limit N (1–180, default
// 180; from SDK 34 0 means no limit and --help says "Set to 0"), --help
// (on stderr, mentions --time-limit), --verbose, --bugreport, --display-id,
// and the output file: "-" is stdout (only with --output-format=h264);
// another path stores the raw stream in the file system. Errors print the
// real messages and exit 2. Every run is recorded (Recordings).
//
// The stream is raw Annex-B H.264 paced at Options.FPS (30) from the
// start, looping the clip (default: the committed demo clip
// adapters/demo/media/demo.h264, 1280x720, an IDR every 30 frames; with
// ClipGOP10 an IDR every 10 s). Like real screenrecord it sends SPS/PPS
// once, at the start (RepeatParameterSets keeps the clip's before every
// IDR). It ends at the time limit with status 0, or when the stream is
// closed.
//
// # Faults
//
// SetFault switches them on and off while the device runs: FaultStall,
// FaultDropMidStream, FaultRefuseOpen, FaultIgnoreConnect,
// FaultStaticScreen, FaultGarbage, FaultRotated, FaultUnauthorized. Drop
// closes the connections now; Unplug closes them and stops listening;
// Start again replugs on the same address.
//
// # How adb 29 reacts (observed with this device)
//
//   - `adb connect` to a device that never answers CNXN waits 10 s, prints
//     "failed to connect to ADDR" (status 0) and lists it "offline"; to one
//     that demands authorization it prints "failed to authenticate to ADDR"
//     and lists it "unauthorized".
//   - After Drop the server lists the device "offline" and reconnects by
//     itself within about half a second. After Unplug it stays listed
//     "offline" (it does not vanish; `adb disconnect` removes it) and it
//     comes back as "device" within about a second of Start, even after
//     30 s away.
//   - A refused OPEN makes `adb shell` fail with "error: closed" (status 1).
//
// Server runs a private adb server (its own port, HOME and TMPDIR) to
// connect devices to; never the user's on 5037.
package adbdevice
