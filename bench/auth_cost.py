#!/usr/bin/env python3
"""What authentication costs, and what it does to a brute-force attempt.

  python3 bench/auth_cost.py target/release/lockstep [SECONDS]

Starts two `lockstep serve` (one push source each): one with `auth = "off"`, one with a user and
an API token. Then, each against both where it applies:
  - GET /api/cameras, sequentially, 3000 times: µs per request (bearer token, session cookie,
    none);
  - /api/ws upgrade + close, 500 times: µs per upgrade;
  - a brute-force attempt: 100 addresses (127.0.0.2 … 127.0.0.101) log in as `admin` with wrong
    passwords as fast as the server answers for SECONDS (default 20), while the owner logs in
    with the right one from 127.0.0.1 once a second: how many guesses the server checked, how
    many it refused (429), and whether the owner got in each time, with the latency.
Prints a Markdown table. One client thread per address; the machine's two cores are shared with
the server, so the absolute figures are upper bounds on what authentication costs.
"""
import base64, http.client, json, os, socket, subprocess, sys, tempfile, threading, time

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/lockstep"
SECS = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
PASSWORD = "the owner's passphrase"


def serve(tmp, auth):
    config = os.path.join(tmp, f"{auth}.toml")
    with open(config, "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:0"\nauth = "{auth}"\n'
                f'[storage]\ndir = "{tmp}/{auth}-data"\n[[push]]\nname = "avatar"\n')
    token = None
    if auth == "on":
        subprocess.run([BIN, "user", "add", "admin", "--role", "admin", "--password-stdin",
                        "--config", config], input=PASSWORD + "\n", text=True, check=True,
                       capture_output=True)
        token = subprocess.run([BIN, "token", "add", "bench", "--role", "admin", "--config", config],
                               text=True, check=True, capture_output=True).stdout.strip()
    proc = subprocess.Popen([BIN, "serve", "--config", config], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    url = proc.stdout.readline().strip()
    port = int(url.rsplit(":", 1)[1].strip("/"))
    return proc, port, token


def request(port, method, path, headers=None, body=None, source="127.0.0.1"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, r, data


def per_request_us(port, headers, n=3000):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t0 = time.perf_counter()
    for _ in range(n):
        c.request("GET", "/api/cameras", headers=headers)
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
    return (time.perf_counter() - t0) / n * 1e6


def per_upgrade_us(port, headers, n=500):
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    t0 = time.perf_counter()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
        head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head[:60]
        s.close()
    return (time.perf_counter() - t0) / n * 1e6


def brute_force(port):
    stop = time.monotonic() + SECS
    counts = {"checked": 0, "refused": 0, "other": 0}
    lock = threading.Lock()

    def attacker(n):
        source = f"127.0.0.{n}"
        guess = 0
        while time.monotonic() < stop:
            body = json.dumps({"name": "admin", "password": f"guess-{n}-{guess}"})
            guess += 1
            status, r, _ = request(port, "POST", "/api/login",
                                   {"Content-Type": "application/json"}, body, source)
            with lock:
                key = "checked" if status == 401 else "refused" if status == 429 else "other"
                counts[key] += 1
            if status == 429:
                # A patient attacker waits what it is told.
                time.sleep(min(float(r.getheader("Retry-After", "1")), max(0, stop - time.monotonic())))

    owner = []

    def legit():
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            status, _, _ = request(port, "POST", "/api/login", {"Content-Type": "application/json"},
                                   json.dumps({"name": "admin", "password": PASSWORD}))
            owner.append((status, (time.perf_counter() - t0) * 1e3))
            time.sleep(1)

    threads = [threading.Thread(target=attacker, args=(n,)) for n in range(2, 102)]
    threads.append(threading.Thread(target=legit))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts, owner


def main():
    with tempfile.TemporaryDirectory() as tmp:
        off, off_port, _ = serve(tmp, "off")
        on, on_port, token = serve(tmp, "on")
        try:
            status, r, _ = request(on_port, "POST", "/api/login", {"Content-Type": "application/json"},
                                   json.dumps({"name": "admin", "password": PASSWORD}))
            cookie = r.getheader("Set-Cookie").split(";")[0]
            rows = [
                ("GET /api/cameras, auth off", per_request_us(off_port, {})),
                ("GET /api/cameras, bearer token", per_request_us(on_port, {"Authorization": f"Bearer {token}"})),
                ("GET /api/cameras, session cookie", per_request_us(on_port, {"Cookie": cookie})),
                ("/api/ws upgrade, auth off", per_upgrade_us(off_port, {})),
                ("/api/ws upgrade, bearer token", per_upgrade_us(on_port, {"Authorization": f"Bearer {token}"})),
                ("/api/ws upgrade, session cookie", per_upgrade_us(on_port, {"Cookie": cookie})),
            ]
            print("| request | µs each (sequential, one client) |\n|---|---|")
            for name, us in rows:
                print(f"| {name} | {us:.0f} |")
            counts, owner = brute_force(on_port)
            ok = [ms for status, ms in owner if status == 200]
            print(f"\nbrute force, 100 addresses × {SECS:.0f} s against `admin`: "
                  f"{counts['checked']} guesses checked (401), {counts['refused']} refused (429), "
                  f"{counts['other']} other; the owner logged in {len(ok)} of {len(owner)} times"
                  + (f", {min(ok):.0f}–{max(ok):.0f} ms" if ok else ""))
        finally:
            off.kill()
            on.kill()


main()
