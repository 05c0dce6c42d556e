#!/usr/bin/env python3
"""Transcoder cost and added latency: feeds the demo clip (1280x720, 30 fps,
~2 Mbit/s H.264) to ffmpeg with the transcode adapter's arguments at real
time, and reports CPU (cores), peak RSS, output bitrate and the time from
writing an access unit to reading its output frame. Renditions alternate
in one run (vp8, baseline, vp8, baseline, ...).

usage: scripts/bench-transcode.py [seconds per run] [runs per rendition]
"""
import os, re, subprocess, sys, threading, time

SECS = float(sys.argv[1]) if len(sys.argv) > 1 else 20
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
data = open(os.path.join(root, "adapters/demo/media/demo.h264"), "rb").read()

# Access units: NAL units up to and including a slice (types 1 and 5).
starts = [m.start() for m in re.finditer(b"\x00\x00\x01", data)]
starts = [s - 1 if s > 0 and data[s - 1] == 0 else s for s in starts] + [len(data)]
aus, cur = [], b""
for a, b in zip(starts, starts[1:]):
    nal = data[a:b]
    cur += nal
    if nal.lstrip(b"\x00")[1] & 0x1F in (1, 5):
        aus.append(cur)
        cur = b""

COMMON = ["-hide_banner", "-loglevel", "error", "-nostdin", "-probesize", "32", "-flags", "low_delay",
          "-framerate", "30", "-f", "h264", "-i", "pipe:0",
          "-an", "-fps_mode", "passthrough", "-flush_packets", "1", "-force_key_frames", "source"]
ARGS = {
    "vp8": COMMON + ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1500k", "-maxrate", "1500k",
                     "-bufsize", "1500k", "-lag-in-frames", "0", "-auto-alt-ref", "0", "-error-resilient", "1",
                     "-g", "60", "-threads", "2", "-f", "ivf", "pipe:1"],
    "h264-baseline": COMMON + ["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "baseline",
                               "-level:v", "3.1", "-pix_fmt", "yuv420p", "-b:v", "1500k", "-maxrate", "1500k", "-bufsize", "1500k",
                               "-bf", "0", "-g", "60", "-x264-params", "aud=1:repeat-headers=1", "-f", "h264", "pipe:1"],
}

def cpu_seconds(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def hwm_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0

def run(name):
    p = subprocess.Popen(["ffmpeg"] + ARGS[name], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    n = int(SECS * 30)
    sent = []
    def feed():
        t0 = time.monotonic()
        for i in range(n):
            sent.append(time.monotonic())
            try:
                p.stdin.write(aus[i % len(aus)]); p.stdin.flush()
            except (BrokenPipeError, ValueError):
                return
            time.sleep(max(0, t0 + (i + 1) / 30 - time.monotonic()))
    th = threading.Thread(target=feed, daemon=True); th.start()
    lat, out_bytes, got = [], 0, 0
    t_start = time.monotonic()
    if name == "vp8":
        p.stdout.read(32)
        while got < n - 5:
            h = p.stdout.read(12)
            if len(h) < 12: break
            sz = int.from_bytes(h[:4], "little"); p.stdout.read(sz)
            out_bytes += sz + 12
            lat.append(time.monotonic() - sent[got]); got += 1
    else:
        buf = b""
        while got < n - 5:
            chunk = os.read(p.stdout.fileno(), 1 << 16)
            if not chunk: break
            buf += chunk; out_bytes += len(chunk)
            # an access unit is complete when the next AUD starts
            k = buf.count(b"\x00\x00\x00\x01\x09")
            while k > 1:
                i = buf.find(b"\x00\x00\x00\x01\x09", 1)
                buf = buf[i:]; k -= 1
                lat.append(time.monotonic() - sent[got]); got += 1
    wall = time.monotonic() - t_start
    cpu, rss = cpu_seconds(p.pid), hwm_kib(p.pid)
    p.kill(); p.wait()
    lat.sort()
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000
    return {"rendition": name, "frames": got, "cores": cpu / wall, "rss_mib": rss / 1024,
            "out_kbps": out_bytes * 8 / wall / 1000, "lat_p50_ms": q(0.5), "lat_p95_ms": q(0.95)}

print(f"# {os.cpu_count()} CPUs, load {open('/proc/loadavg').read().split()[:3]}, {SECS:.0f} s per run")
print("| run | rendition | frames out | CPU (cores) | peak RSS (MiB) | out kbit/s | added latency p50 / p95 (ms) |")
print("|---|---|---|---|---|---|---|")
for r in range(RUNS):
    for name in ("vp8", "h264-baseline"):
        m = run(name)
        print(f"| {r+1} | {m['rendition']} | {m['frames']} | {m['cores']:.2f} | {m['rss_mib']:.0f} | {m['out_kbps']:.0f} | {m['lat_p50_ms']:.0f} / {m['lat_p95_ms']:.0f} |", flush=True)
