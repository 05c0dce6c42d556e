#!/usr/bin/env python3
"""Split a server's `perf record -g` samples by where the CPU went.

Usage: perf script -i perf.data -F comm,tid,ip,sym | scripts/perf-split.py

On loopback the receiving sockets' network stack runs inside the sender's
system call (the softirq that delivers each datagram: ip_rcv, udp_rcv, the
socket wake-up), so a server's CPU includes its receivers' kernel work,
which on a real network is done by the viewers' machines. This separates
that share ("kernel rx") from the server's own sending ("kernel tx
sendmmsg"), its other system calls, and user space.
"""
import collections
import sys

RX = ("net_rx_action", "process_backlog", "__netif_receive_skb", "ip_rcv", "udp_rcv", "ip_local_deliver")


def samples(lines):
    cur = None
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if cur is not None:
                yield cur
            cur = None
            continue
        if not line[0].isspace():
            cur = []
            continue
        parts = line.strip().split(None, 1)
        if cur is not None:
            cur.append(parts[1] if len(parts) > 1 else "?")
    if cur:
        yield cur


def classify(st):
    if any(f in RX for f in st):
        return "kernel rx (loopback receivers' stack, softirq)"
    calls = [f for f in st if f.startswith("__x64_sys_")]
    if "__x64_sys_sendmmsg" in calls:
        return "kernel tx sendmmsg"
    if calls:
        return "kernel " + calls[-1][len("__x64_sys_"):]
    if any(f.startswith(("asm_", "irq", "sysvec")) for f in st):
        return "kernel interrupts"
    return "user"


def main():
    c = collections.Counter(classify(st) for st in samples(sys.stdin))
    tot = sum(c.values()) or 1
    for k, v in c.most_common():
        print(f"{v:8d} {100 * v / tot:5.1f}%  {k}")
    print(f"{tot:8d} samples")


if __name__ == "__main__":
    main()
