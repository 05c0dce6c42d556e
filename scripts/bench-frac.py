#!/usr/bin/env python3
# Usage: scripts/bench-frac.py DIR label=binary... (DIR from PROF=S scripts/bench-ab.sh)
import json,subprocess,sys,re,os,glob
# For each <label>-<round>.cpu.pprof in DIR: userland µs/packet (profile total minus Syscall6 flat), syscall µs/packet, scheduler (runtime.mcall cum) µs/packet.
d=sys.argv[1]; bins=dict(a.split('=') for a in sys.argv[2:])
for pp in sorted(glob.glob(d+'/*.cpu.pprof')):
    name=os.path.basename(pp)[:-10]; label=name.rsplit('-',1)[0]
    try: r=json.load(open(d+'/'+name+'.json'))
    except Exception: continue
    sw=r['steady_window']
    m0=re.fullmatch(r'(?:(\d+)m)?([\d.]+)s',sw)
    if not m0 or r['window_sent_packets']==0: continue
    rate=r['window_sent_packets']/((float(m0.group(1) or 0)*60)+float(m0.group(2)))
    out=subprocess.run(['go','tool','pprof','-top','-cum','-nodecount=1000',bins[label],pp],capture_output=True,text=True).stdout
    m=re.search(r'Duration: ([\d.]+)s, Total samples = ([\d.]+)(m?s)',out); dur=float(m.group(1)); tot=float(m.group(2))/(1000 if m.group(3)=='ms' else 1)
    def cum(fn, col=4):
        for l in out.splitlines():
            f=l.split()
            if len(f)>=6 and f[-1]==fn:
                v=f[col-1 if col==1 else 3]; v=f[0] if col==1 else f[3]
                return float(v.rstrip('ms').rstrip('s'))/(1000 if v.endswith('ms') else 1)
        return 0.0
    sysflat=cum('internal/runtime/syscall/linux.Syscall6',1)
    sched=cum('runtime.mcall')
    pk=rate*dur
    print(f"{name:10} load-window {r['server_us_per_sent_packet']:.2f} us/sent  profile: userland {1e6*(tot-sysflat)/pk:.2f} us/pkt  syscalls {1e6*sysflat/pk:.2f}  scheduler(mcall) {1e6*sched/pk:.2f}  wloss {100*r['window_lost']/max(1,r['window_lost']+r['window_packets']):.0f}%")
