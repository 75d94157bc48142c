#!/usr/bin/env python3
"""`duplex bench echo` speaking bench/lws-echo-load's lines, for
bench/echo.sh's CLIENT=duplex.

The independent libwebsockets client is the limit in bench/echo.sh's
scenarios (at 95-100 % of its core while the servers are not): every server
then shows the client's rate. duplex's own C client needs less CPU per
echo, so the server's core becomes the limit and the servers' rates differ
as their costs do. It checks every echo's order, length and content, like
the other; it is duplex's, so the independent client stays the default.

  duplex-echo-load.py DUPLEX -h HOST -p PORT -c CONNS -d DEPTH -s SIZE
                      -w WARMUP -t SECONDS [-b] [-F FRAG] [-S]

Prints WINDOW_START WARMUP seconds after starting `duplex bench` (its
window opens a little later: it opens the connections first) and
RESULT msgs=... secs=... msg_per_s=... errors=... conns=... client_cpu=...
mb_per_s=... when it closes. -F (fragmented messages) and -S (wss://) are
not offered by `duplex bench`: it exits with an error for them.
"""
import json
import os
import subprocess
import sys
import time


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])     # utime + stime


def usage(why):
    print(f"duplex-echo-load: {why}\nusage: duplex-echo-load.py DUPLEX -h HOST -p PORT -c CONNS "
          "-d DEPTH -s SIZE [-w WARMUP] [-t SECONDS] [-b]", file=sys.stderr)
    print("RESULT msgs=0 secs=0 msg_per_s=0 errors=1 conns=0 client_cpu=0")
    return 2


def main(argv):
    if not argv:
        return usage("no duplex binary given")
    duplex, args = argv[0], argv[1:]
    opt, binary, i = {}, False, 0
    while i < len(args):
        a = args[i]
        if a == "-b":
            binary = True
            i += 1
        elif a in ("-F", "-S"):
            print(f"duplex-echo-load: {a} is not offered by duplex bench", file=sys.stderr)
            print("RESULT msgs=0 secs=0 msg_per_s=0 errors=1 conns=0 client_cpu=0")
            return 1
        elif a in ("-h", "-p", "-c", "-d", "-s", "-w", "-t") and i + 1 < len(args):
            opt[a] = args[i + 1]
            i += 2
        else:
            return usage(f"unknown or incomplete option {a}")
    missing = [o for o in ("-h", "-p", "-c", "-d", "-s") if o not in opt]
    if missing:
        return usage("missing " + " ".join(missing))
    warmup, secs = float(opt.get("-w", "0")), float(opt.get("-t", "5"))
    cmd = [duplex, "bench", "echo", "--url", f"ws://{opt['-h']}:{opt['-p']}/",
           "--connections", opt["-c"], "--depth", opt["-d"], "--size", opt["-s"],
           "--warmup", str(warmup), "--seconds", str(secs), "--json"]
    if binary:
        cmd.append("--binary")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    hz = os.sysconf("SC_CLK_TCK")
    time.sleep(warmup)
    c0 = cpu_ticks(proc.pid) / hz
    print("WINDOW_START", flush=True)
    out = proc.stdout.read()
    _, _, ru = os.wait4(proc.pid, 0)         # its CPU to the end (closing adds little)
    proc.returncode = 0                      # reaped here: Popen must not wait for it again
    cpu = 100 * (ru.ru_utime + ru.ru_stime - c0) / secs
    try:
        r = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print("duplex-echo-load: no result from duplex bench", file=sys.stderr)
        print("RESULT msgs=0 secs=0 msg_per_s=0 errors=1 conns=0 client_cpu=0")
        return 1
    errors = r["errors"] + r["content_errors"] + r["conn_errors"] + r["lost"]
    print(f"RESULT msgs={r['messages']} secs={r['seconds']:.3f} msg_per_s={r['throughput']:.0f} "
          f"errors={errors} conns={r['opened']} client_cpu={cpu:.1f} mode=batched "
          f"type={'binary' if binary else 'text'} size={opt['-s']} mb_per_s={r['mbytes_per_s']:.2f}",
          flush=True)
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
