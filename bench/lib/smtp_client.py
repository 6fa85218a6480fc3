#!/usr/bin/env python3
"""The SMTP load client of bench/run.ts: Python's smtplib, as a new user would measure.

    python3 bench/lib/smtp_client.py <host> <port> <message-dir> <connections> <recipient> [<rate>]

Reads every file of <message-dir> (sorted by name) into memory first, then sends them
over <connections> threads, each with one SMTP session reused for all its messages
(message i goes to thread i % connections). Per message it times sendmail() from MAIL FROM
to the 250 after the data. Prints one JSON object: sent, acknowledged, errors, seconds,
perSecond (acknowledged messages per second), p50/p99/max in ms, and lastAckEpochMs (the
wall clock of the last 250, so the caller can time when the last entry becomes visible).
With <rate> > 0, message i is not sent before i / <rate> seconds after the start (a steady
offered load); 0 or absent sends each message as soon as the previous one is acknowledged.
"""
import json
import os
import smtplib
import sys
import threading
import time


def main():
    host, port, directory, connections, recipient = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
    rate = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    names = sorted(os.listdir(directory))
    messages = []
    for name in names:
        with open(os.path.join(directory, name), 'rb') as f:
            messages.append(f.read())
    latencies = []
    errors = []
    last_ack = [0.0]
    lock = threading.Lock()

    def worker(index):
        mine = messages[index::connections]
        position = index
        session = smtplib.SMTP(host, port, timeout=120)
        session.ehlo('bench.example')
        local = []
        for raw in mine:
            if rate > 0:
                wait = t0 + position / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            position += connections
            started = time.perf_counter()
            try:
                session.sendmail('sender@example.com', [recipient], raw)
            except (smtplib.SMTPException, OSError) as err:
                with lock:
                    errors.append(str(err)[:200])
                try:
                    session.close()
                except OSError:
                    pass
                session = smtplib.SMTP(host, port, timeout=120)
                session.ehlo('bench.example')
                continue
            local.append((time.perf_counter() - started) * 1000)
            now = time.time()
            with lock:
                if now > last_ack[0]:
                    last_ack[0] = now
        try:
            session.quit()
        except (smtplib.SMTPException, OSError):
            pass
        with lock:
            latencies.extend(local)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    latencies.sort()

    def pct(p):
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    print(json.dumps({
        'sent': len(messages), 'acknowledged': len(latencies), 'errors': len(errors), 'errorSamples': errors[:3],
        'seconds': seconds, 'perSecond': len(latencies) / seconds if seconds else 0,
        'p50': pct(50), 'p99': pct(99), 'max': latencies[-1] if latencies else None,
        'lastAckEpochMs': last_ack[0] * 1000,
    }))


if __name__ == '__main__':
    main()
