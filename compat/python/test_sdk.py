"""The official RocketMQ 5 Python SDK (PyPI rocketmq-python-client),
unchanged, against a real `strata serve` (the binary named by STRATA_BIN)
on loopback ports the OS picks.

What it checks is where this SDK differs from the Rust and Node.js ones:
it never sets a message's queue_id (so the server must pick the queue, or
every message lands on queue 0), and its PushConsumer needs the delivery
timestamp that ends each receive (without it every batch fails and goes to
the dead-letter topic). Also: FIFO order per message group through a
SimpleConsumer, a group reset that a SimpleConsumer follows, and a stop
(SIGTERM) that does not wait for the clients that keep their streams open.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from rocketmq import (
    ClientConfiguration,
    ConsumeResult,
    Credentials,
    FilterExpression,
    Message,
    MessageListener,
    Producer,
    PushConsumer,
    SimpleConsumer,
)

BIN = os.environ["STRATA_BIN"]


class Strata:
    """A `strata serve` on a fresh data directory, and its CLI as admin."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="strata-python-")
        env = dict(os.environ, STRATA_LOG_LEVEL="warn", STRATA_CACHE_BLOCK_DISK_DIR="none")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
             "--data-dir", self.dir],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env=env)
        # Keep draining stderr so the server never blocks on a full pipe,
        # keep what it said, and note its addresses when it reports them.
        self.log = []
        ready = threading.Event()

        def drain():
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"serving HTTP on (\S+) and RocketMQ gRPC on (\S+)", line)
                if m and not ready.is_set():
                    self.http, self.grpc = m.group(1), m.group(2)
                    ready.set()

        self.reader = threading.Thread(target=drain, daemon=True)
        self.reader.start()
        if not ready.wait(60):
            self.stop()
            raise RuntimeError("strata serve did not report its addresses: " + "".join(self.log))

    def cli(self, *args):
        env = dict(os.environ, STRATA_SERVER=self.http,
                   STRATA_CREDENTIALS_FILE=os.path.join(self.dir, "admin-credentials"))
        return subprocess.run([BIN, *args], env=env, capture_output=True, text=True,
                              check=True).stdout

    def tenant_key(self, tenant, role="tenant-admin"):
        self.cli("tenant", "create", tenant)
        out = self.cli("key", "create", "--tenant", tenant, "--role", role)
        fields = dict(line.strip().split("=", 1) for line in out.splitlines() if "=" in line)
        return fields["access_key"], fields["secret_key"]

    def end_offsets(self, tenant, topic):
        described = json.loads(self.cli("--tenant", tenant, "--json", "topic", "describe", topic))
        return [q["end_offset"] for q in described["queue_stats"]]

    def bodies(self, tenant, topic):
        """Every message body of a topic (none while it does not exist)."""
        env = dict(os.environ, STRATA_SERVER=self.http,
                   STRATA_CREDENTIALS_FILE=os.path.join(self.dir, "admin-credentials"))
        done = subprocess.run([BIN, "--tenant", tenant, "--json", "consume", topic,
                               "--from", "earliest"], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            return []
        return [json.loads(line)["body"] for line in done.stdout.splitlines()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def message(topic, body, group=None):
    m = Message()
    m.topic = topic
    m.body = body.encode()
    if group:
        m.message_group = group
    return m


class PythonSdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.strata = Strata()
        cls.addClassCleanup(cls.strata.stop)
        ak, sk = cls.strata.tenant_key("py")
        cls.config = ClientConfiguration(cls.strata.grpc, Credentials(ak, sk))

    def cli(self, *args):
        return self.strata.cli("--tenant", "py", *args)

    def test_sends_are_spread_over_every_queue(self):
        self.cli("topic", "create", "spread", "--queues", "8")
        producer = Producer(self.config, ("spread",))
        producer.startup()
        try:
            for i in range(32):
                producer.send(message("spread", f"m{i}"))
        finally:
            producer.shutdown()
        ends = self.strata.end_offsets("py", "spread")
        self.assertEqual(sum(ends), 32, ends)
        # The SDK leaves queue_id at 0: before the server picked, all 32
        # were on queue 0.
        self.assertTrue(all(n > 0 for n in ends), f"queues left empty: {ends}")

    def test_a_push_consumer_started_first_gets_everything_once(self):
        self.cli("topic", "create", "pushed", "--queues", "4")
        self.cli("group", "create", "pushers", "--max-delivery-attempts", "2")
        got, lock, all_in = [], threading.Lock(), threading.Event()

        class Listener(MessageListener):
            def consume(self, m):
                with lock:
                    got.append(m.body.decode())
                    if len(got) >= 20:
                        all_in.set()
                return ConsumeResult.SUCCESS

        consumer = PushConsumer(self.config, "pushers", Listener(),
                                {"pushed": FilterExpression("*")})
        consumer.startup()
        producer = Producer(self.config, ("pushed",))
        producer.startup()
        try:
            sent = [f"push-{i}" for i in range(20)]
            for body in sent:
                producer.send(message("pushed", body))
            self.assertTrue(all_in.wait(60), f"the PushConsumer got {len(got)} of 20: {got}")
            time.sleep(1)  # a duplicate would arrive now
            with lock:
                self.assertEqual(sorted(got), sorted(sent))
        finally:
            producer.shutdown()
            consumer.shutdown()

    def test_fifo_order_holds_per_message_group(self):
        self.cli("topic", "create", "ordered", "--queues", "4", "--type", "fifo")
        self.cli("group", "create", "readers")
        consumer = SimpleConsumer(self.config, "readers", {"ordered": FilterExpression("*")}, 2)
        consumer.startup()
        producer = Producer(self.config, ("ordered",))
        producer.startup()
        try:
            for i in range(10):
                for g in ("a", "b", "c"):
                    producer.send(message("ordered", f"{g}-{i}", group=g))
            seen = {"a": [], "b": [], "c": []}
            deadline = time.monotonic() + 60
            while sum(map(len, seen.values())) < 30 and time.monotonic() < deadline:
                for m in consumer.receive(16, 10):
                    g, i = m.body.decode().split("-")
                    self.assertEqual(m.message_group, g)
                    seen[g].append(int(i))
                    consumer.ack(m)
            for g, order in seen.items():
                self.assertEqual(order, list(range(10)), f"group {g}")
        finally:
            producer.shutdown()
            consumer.shutdown()

    def test_a_fifo_push_consumer_gives_up_after_the_groups_attempts(self):
        self.cli("topic", "create", "stubborn", "--queues", "2", "--type", "fifo")
        self.cli("group", "create", "failers", "--max-delivery-attempts", "3")
        calls, lock = [], threading.Lock()

        class Failing(MessageListener):
            def consume(self, m):
                with lock:
                    calls.append(m.body.decode())
                return ConsumeResult.FAILURE

        consumer = PushConsumer(self.config, "failers", Failing(),
                                {"stubborn": FilterExpression("*")})
        consumer.startup()
        producer = Producer(self.config, ("stubborn",))
        producer.startup()
        try:
            producer.send(message("stubborn", "never-ok", group="g"))
            dead = []
            deadline = time.monotonic() + 60
            while not dead and time.monotonic() < deadline:
                time.sleep(1)
                dead = self.strata.bodies("py", "failers-DLQ")
            self.assertEqual(dead, ["never-ok"], f"listener calls: {calls}")
            with lock:
                # The SDK retries a FIFO message itself: with the group's
                # exponential backoff only, it made 17 attempts.
                self.assertEqual(calls, ["never-ok"] * 3)
        finally:
            producer.shutdown()
            consumer.shutdown()

    def test_a_group_reset_replays_for_a_simple_consumer(self):
        self.cli("topic", "create", "replayed", "--queues", "4")
        self.cli("group", "create", "replayers", "--start", "earliest")
        producer = Producer(self.config, ("replayed",))
        producer.startup()
        try:
            sent = [f"r{i}" for i in range(24)]
            for body in sent:
                producer.send(message("replayed", body))
        finally:
            producer.shutdown()
        consumer = SimpleConsumer(self.config, "replayers", {"replayed": FilterExpression("*")}, 2)
        consumer.startup()
        try:
            def drain():
                got = []
                deadline = time.monotonic() + 30
                while len(got) < len(sent) and time.monotonic() < deadline:
                    for m in consumer.receive(16, 30):
                        got.append(m.body.decode())
                        consumer.ack(m)
                return sorted(got)

            self.assertEqual(drain(), sorted(sent))
            # Consumers of the official SDKs receive by message: a reset
            # of the group's offsets must move where they receive too.
            self.cli("group", "reset", "replayers", "--topic", "replayed", "--to", "earliest")
            self.assertEqual(drain(), sorted(sent), "every message once more after the reset")
        finally:
            consumer.shutdown()


class Stop(unittest.TestCase):
    def test_a_stop_does_not_wait_for_connected_clients(self):
        strata = Strata()
        try:
            ak, sk = strata.tenant_key("stop")
            strata.cli("--tenant", "stop", "topic", "create", "idle")
            producer = Producer(ClientConfiguration(strata.grpc, Credentials(ak, sk)), ("idle",))
            producer.startup()
            producer.send(message("idle", "before the stop"))
            strata.proc.send_signal(signal.SIGTERM)
            try:
                code = strata.proc.wait(60)
            finally:
                producer.shutdown()
            # The producer's Telemetry stream stays open for as long as it
            # lives; before, the stop waited for it (minutes). Now the stream
            # ends with the stop, so the bounded drain never runs out.
            self.assertEqual(code, 0)
            strata.reader.join(10)
            said = "".join(strata.log)
            self.assertNotIn("still open after the drain", said)
        finally:
            strata.stop()


if __name__ == "__main__":
    unittest.main()
