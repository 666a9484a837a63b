// The official RocketMQ 5 Node.js SDK (npm rocketmq-client-nodejs, unchanged)
// against Strata: Producer, SimpleConsumer (receive, changeInvisibleDuration,
// ack) and PushConsumer.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const os = require('node:os');
const path = require('node:path');
const { Producer, SimpleConsumer, PushConsumer, ConsumeResult } = require('rocketmq-client-nodejs');
const { start } = require('../strata');

// The SDK writes its logs under the home directory; keep them in /tmp.
process.env.HOME = path.join(os.tmpdir(), 'strata-node-sdk-home');

test('producer, simple consumer and push consumer', async () => {
  const strata = await start('sdk');
  try {
    const publisher = strata.key('acme', 'publisher');
    const consumer = strata.key('acme', 'consumer');
    strata.cli('--tenant', 'acme', 'topic', 'create', 'orders', '--queues', '1');
    strata.cli('--tenant', 'acme', 'group', 'create', 'simple');
    strata.cli('--tenant', 'acme', 'group', 'create', 'pushers');
    const base = { endpoints: strata.grpc, namespace: '', requestTimeout: 10000 };

    const producer = new Producer({ ...base, sessionCredentials: publisher, topics: ['orders'] });
    await producer.startup();
    const ids = [];
    for (let i = 0; i < 6; i++) {
      const receipt = await producer.send({
        topic: 'orders',
        tag: 'TagA',
        keys: [`key-${i}`],
        properties: new Map([['n', String(i)]]),
        body: Buffer.from(`hello ${i}`),
      });
      ids.push(receipt.messageId);
    }
    await producer.shutdown();
    const stored = strata.consumeAll('acme', 'orders');
    assert.strictEqual(stored.length, 6);
    assert.deepStrictEqual(stored.map((m) => m.id), ids);
    assert.strictEqual(stored[0].properties.n, '0');

    const simple = new SimpleConsumer({
      ...base,
      sessionCredentials: consumer,
      consumerGroup: 'simple',
      subscriptions: new Map([['orders', '*']]),
      awaitDuration: 3000,
    });
    await simple.startup();
    const first = await simple.receive(3, 20000);
    assert.strictEqual(first.length, 3);
    assert.ok(first.every((m) => !m.corrupted), 'the MD5 body digest verifies');
    assert.strictEqual(first[0].body.toString(), 'hello 0');
    // Hold one longer, ack the others; then receive the rest.
    await simple.changeInvisibleDuration(first[0], 30000);
    await simple.ack(first[1]);
    await simple.ack(first[2]);
    const rest = await simple.receive(10, 20000);
    assert.deepStrictEqual(rest.map((m) => m.body.toString()), ['hello 3', 'hello 4', 'hello 5']);
    for (const m of rest) await simple.ack(m);
    await simple.shutdown();

    // A push consumer in another group gets every message once.
    const seen = new Set();
    let done;
    const all = new Promise((resolve) => { done = resolve; });
    const push = new PushConsumer({
      ...base,
      sessionCredentials: consumer,
      consumerGroup: 'pushers',
      subscriptions: new Map([['orders', '*']]),
      messageListener: {
        consume(m) {
          seen.add(m.body.toString());
          if (seen.size === 6) done();
          return ConsumeResult.SUCCESS;
        },
      },
    });
    await push.startup();
    await Promise.race([all, new Promise((_, reject) => setTimeout(() => reject(new Error(`push got ${seen.size}`)), 30000))]);
    await push.shutdown();
    assert.strictEqual(seen.size, 6);
  } finally {
    strata.stop();
  }
});
