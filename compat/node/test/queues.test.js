// The official Node.js SDK (rocketmq-client-nodejs, unchanged) on a topic
// with several queues: the SimpleConsumer names queue 0 of the route in
// every receive and still gets every queue's messages; a PushConsumer
// started before the producer gets every message, one of them again after
// its listener failed it, and then shuts down.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const os = require('node:os');
const path = require('node:path');
const { Producer, SimpleConsumer, PushConsumer, ConsumeResult } = require('rocketmq-client-nodejs');
const { start } = require('../strata');

process.env.HOME = path.join(os.tmpdir(), 'strata-node-sdk-home');

// The SDK's producer sends every message to queue 0 of the route, so the
// messages are spread over the queues with the CLI: job-i to queue i % 4.
function spread(strata, topic, count) {
  for (let q = 0; q < 4; q++) {
    const lines = [];
    for (let i = q; i < count; i += 4) lines.push(`job-${i}`);
    strata.publishTo('acme', topic, q, lines);
  }
}

function within(ms, what, promise) {
  return Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(what())), ms))]);
}

// The SDK names queue 0 in every send (its load balancer keeps only the
// route's queues whose id is 0) and says its language is "HTTP": the
// server picks the queue for it, so a many-queue topic is used whole.
test('producer sends are spread over every queue', async () => {
  const strata = await start('queues-producer');
  try {
    const publisher = strata.key('acme', 'publisher');
    strata.cli('--tenant', 'acme', 'topic', 'create', 'spread', '--queues', '4');
    const producer = new Producer({
      endpoints: strata.grpc, namespace: '', requestTimeout: 10000,
      sessionCredentials: publisher, topics: ['spread'],
    });
    await producer.startup();
    for (let i = 0; i < 8; i++) {
      await producer.send({ topic: 'spread', body: Buffer.from(`m${i}`) });
    }
    await producer.shutdown();
    const described = JSON.parse(strata.cli('--tenant', 'acme', '--json', 'topic', 'describe', 'spread'));
    const ends = described.queue_stats.map((q) => q.end_offset);
    assert.strictEqual(ends.reduce((a, b) => a + b, 0), 8, `${ends}`);
    assert.ok(ends.every((n) => n > 0), `queues left empty: ${ends}`);
    await new Promise((resolve) => { setTimeout(resolve, 500); });
  } finally {
    strata.stop();
  }
});

test('simple consumer gets the messages of every queue', async () => {
  const strata = await start('queues-simple');
  try {
    const consumer = strata.key('acme', 'consumer');
    strata.cli('--tenant', 'acme', 'topic', 'create', 'jobs', '--queues', '4');
    strata.cli('--tenant', 'acme', 'group', 'create', 'simple');
    const base = { endpoints: strata.grpc, namespace: '', requestTimeout: 10000 };
    spread(strata, 'jobs', 12);

    const simple = new SimpleConsumer({
      ...base,
      sessionCredentials: consumer,
      consumerGroup: 'simple',
      subscriptions: new Map([['jobs', '*']]),
      awaitDuration: 3000,
    });
    await simple.startup();
    const got = new Set();
    for (let i = 0; i < 10 && got.size < 12; i++) {
      for (const m of await simple.receive(16, 20000)) {
        got.add(m.body.toString());
        await simple.ack(m);
      }
    }
    assert.strictEqual(got.size, 12, `got ${[...got]}`);
    const started = Date.now();
    await simple.shutdown();
    console.log(`SimpleConsumer.shutdown() took ${Date.now() - started} ms`);
    // shutdown() returns before its telemetry stream has closed; killing the
    // server at once would fail that stream after the test ended.
    await new Promise((resolve) => { setTimeout(resolve, 500); });
  } finally {
    strata.stop();
  }
});

test('push consumer started first: a failed message comes back, then shutdown returns', async () => {
  const strata = await start('queues-push');
  try {
    const consumer = strata.key('acme', 'consumer');
    strata.cli('--tenant', 'acme', 'topic', 'create', 'jobs', '--queues', '4');
    strata.cli('--tenant', 'acme', 'group', 'create', 'pushers');
    const base = { endpoints: strata.grpc, namespace: '', requestTimeout: 10000 };

    const deliveries = new Map();
    const succeeded = new Set();
    let failedOnce = false;
    let done;
    const all = new Promise((resolve) => { done = resolve; });
    const push = new PushConsumer({
      ...base,
      sessionCredentials: consumer,
      consumerGroup: 'pushers',
      subscriptions: new Map([['jobs', '*']]),
      messageListener: {
        consume(m) {
          const body = m.body.toString();
          deliveries.set(body, (deliveries.get(body) || 0) + 1);
          if (body === 'job-3' && !failedOnce) {
            failedOnce = true;
            return ConsumeResult.FAILURE;
          }
          succeeded.add(body);
          if (succeeded.size === 12) done();
          return ConsumeResult.SUCCESS;
        },
      },
    });
    await push.startup();
    spread(strata, 'jobs', 12);
    await within(60000, () => `push consumer got ${[...succeeded]}`, all);
    assert.strictEqual(deliveries.get('job-3'), 2, 'the failed message was delivered again');
    for (const [body, n] of deliveries) {
      if (body !== 'job-3') assert.strictEqual(n, 1, `${body} delivered once`);
    }
    // The SDK first waits for its in-flight long polls (it cancels none and
    // tells the server nothing until they end), then sleeps 1 s, then sends
    // NotifyClientTermination. Before the server's retry settings were
    // fixed, a failed message kept the SDK nacking forever and shutdown
    // never returned.
    const started = Date.now();
    await within(40000, () => 'PushConsumer.shutdown() did not return', push.shutdown());
    console.log(`PushConsumer.shutdown() took ${Date.now() - started} ms`);
  } finally {
    strata.stop();
  }
});
