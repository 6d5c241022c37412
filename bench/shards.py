#!/usr/bin/env python3
"""The queue over Redis shards: does its ceiling grow with the masters?

    python3 bench/shards.py [--messages 200000] [--readers 4]

Runs the queue's own path (`cargo run --release -p wxpush-delivery --example
queue_throughput`: push, read, final status, acknowledge — what delivery's workers
do around a WeChat call) three times on private servers on free loopback ports:

1. one redis-server, one partition (today's single Redis);
2. a one-master Redis Cluster, three partitions (the cluster client's own cost);
3. a three-master Redis Cluster, six partitions (two per master).

Per run: messages/s end to end, and each Redis node's CPU per message (INFO cpu,
used_cpu_user + used_cpu_sys, before and after). A single Redis is the ceiling when
its one core is busy; the figure that says whether the ceiling grows is the busiest
node's CPU per message: a third of it means three times the messages before any one
node is saturated. On a two-core machine the end-to-end rate cannot show that
growth (the load generator and the nodes share the cores), so both are reported.
Results go to bench/results/shards.json and are printed as Markdown.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from bench import RESULTS, ROOT, free_port, machine, wait_tcp  # noqa: E402

EXAMPLE = ROOT / "target/release/examples/queue_throughput"


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                          check=True).stdout


def cpu_seconds(port):
    info = dict(line.split(":", 1) for line in redis_cli(port, "INFO", "cpu").splitlines() if ":" in line)
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


class Nodes:
    """`count` redis-servers (cluster-enabled when `cluster`), stopped on exit."""

    def __init__(self, count, cluster):
        self.dir = tempfile.mkdtemp(prefix="wxpush-shards-")
        self.cluster = cluster
        self.ports = []
        while len(self.ports) < count:
            port = free_port()
            if port not in self.ports:
                self.ports.append(port)
        self.procs = []
        try:
            self.start(cluster)
        except BaseException:
            self.stop()
            raise

    def start(self, cluster):
        for port in self.ports:
            args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", self.dir, "--dbfilename", f"{port}.rdb",
                    "--logfile", f"{self.dir}/{port}.log"]
            if cluster:
                args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"]
            self.procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
        for port in self.ports:
            wait_tcp(port, "redis-server")
        if cluster and len(self.ports) == 1:
            # redis-cli --cluster create wants three masters: one takes every slot itself.
            redis_cli(self.ports[0], "CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        elif cluster:
            subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                            "--cluster-replicas", "0", "--cluster-yes"], check=True, stdout=subprocess.DEVNULL)
        self.url = (f"redis-cluster://{','.join(f'127.0.0.1:{p}' for p in self.ports)}" if cluster
                    else f"redis://127.0.0.1:{self.ports[0]}/")

    def wait_ok(self):
        deadline = time.time() + 20
        while self.cluster and not all("cluster_state:ok" in redis_cli(p, "CLUSTER", "INFO") for p in self.ports):
            if time.time() > deadline:
                sys.exit("the cluster never reached cluster_state:ok")
            time.sleep(0.1)

    def stop(self):
        for p in self.procs:
            p.terminate()
            p.wait()


def run(name, count, cluster, partitions, messages, readers):
    nodes = Nodes(count, cluster)
    try:
        nodes.wait_ok()
        before = [cpu_seconds(p) for p in nodes.ports]
        out = subprocess.run([str(EXAMPLE), nodes.url, str(partitions), str(messages), str(readers)],
                             capture_output=True, text=True, check=True).stdout
        after = [cpu_seconds(p) for p in nodes.ports]
    finally:
        nodes.stop()
    result = json.loads(out.strip().splitlines()[-1])
    per_node = [round((a - b) / messages * 1e6, 1) for a, b in zip(after, before)]
    return {"setup": name, "masters": count, "partitions": partitions, **result,
            "redis_cpu_us_per_message_by_node": per_node,
            "busiest_node_cpu_us_per_message": max(per_node),
            "redis_cpu_us_per_message_total": round(sum(per_node), 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--readers", type=int, default=4)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "wxpush-delivery", "--example",
                    "queue_throughput"], cwd=ROOT, check=True)
    rows = [
        run("one redis-server", 1, False, 1, args.messages, args.readers),
        run("Redis Cluster, 1 master", 1, True, 3, args.messages, args.readers),
        run("Redis Cluster, 3 masters", 3, True, 6, args.messages, args.readers),
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "shards.json").write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))
    print("| setup | partitions | messages/s | Redis CPU µs/msg, busiest node | by node | all nodes |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setup']} | {r['partitions']} | {r['rate_per_s']} | {r['busiest_node_cpu_us_per_message']} | "
              f"{r['redis_cpu_us_per_message_by_node']} | {r['redis_cpu_us_per_message_total']} |")


if __name__ == "__main__":
    main()
