// The official Node.js SDK (rocketmq-client-nodejs 1.0.8, unchanged) where
// it is fragile: a producer of several topics starting up, and a message
// too large for the SDK's 4 MiB gRPC reply limit among small ones.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const os = require('node:os');
const path = require('node:path');
const { Producer, SimpleConsumer } = require('rocketmq-client-nodejs');
const { start } = require('../strata');

process.env.HOME = path.join(os.tmpdir(), 'strata-node-sdk-home');

function within(ms, what, promise) {
  return Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(what)), ms))]);
}

// The SDK waits for the answer to its Settings only after fetching every
// topic's route and missed an answer that came sooner: with four topics
// startup() never returned. The server sends that answer again.
test('a producer of four topics starts', async () => {
  const strata = await start('edges-startup');
  try {
    const publisher = strata.key('acme', 'publisher');
    const topics = ['t1', 't2', 't3', 't4'];
    for (const t of topics) strata.cli('--tenant', 'acme', 'topic', 'create', t, '--queues', '1');
    for (let round = 0; round < 3; round++) {
      const producer = new Producer({
        endpoints: strata.grpc, namespace: '', requestTimeout: 10000, sessionCredentials: publisher, topics,
      });
      await within(15000, `startup() of round ${round} did not return`, producer.startup());
      await producer.send({ topic: 't4', body: Buffer.from(`r${round}`) });
      await producer.shutdown();
    }
    await new Promise((resolve) => { setTimeout(resolve, 500); });
  } finally {
    strata.stop();
  }
});

// A 4 MiB body makes a reply the SDK refuses, which fails its whole
// receive. That message goes out alone, so the small ones around it all
// arrive; it alone ends in the dead-letter topic.
test('small messages around one too large for the SDK all arrive', async () => {
  const strata = await start('edges-large');
  try {
    const publisher = strata.key('acme', 'publisher');
    const consumer = strata.key('acme', 'consumer');
    strata.cli('--tenant', 'acme', 'topic', 'create', 'mixed', '--queues', '1');
    strata.cli('--tenant', 'acme', 'group', 'create', 'eaters', '--max-delivery-attempts', '2');
    const base = { endpoints: strata.grpc, namespace: '', requestTimeout: 10000 };
    const producer = new Producer({ ...base, sessionCredentials: publisher, topics: ['mixed'] });
    await producer.startup();
    const small = [];
    for (let i = 0; i < 3; i++) {
      small.push(`before-${i}`);
      await producer.send({ topic: 'mixed', body: Buffer.from(`before-${i}`) });
    }
    await producer.send({ topic: 'mixed', body: Buffer.alloc(4 * 1024 * 1024, 66) });
    for (let i = 0; i < 3; i++) {
      small.push(`after-${i}`);
      await producer.send({ topic: 'mixed', body: Buffer.from(`after-${i}`) });
    }
    await producer.shutdown();

    const simple = new SimpleConsumer({
      ...base, sessionCredentials: consumer, consumerGroup: 'eaters',
      subscriptions: new Map([['mixed', '*']]), awaitDuration: 2000,
    });
    await simple.startup();
    const got = new Set();
    let refused = 0;
    for (let i = 0; i < 20 && got.size < small.length; i++) {
      try {
        for (const m of await simple.receive(16, 2000)) {
          got.add(m.body.toString());
          await simple.ack(m);
        }
      } catch (e) {
        refused += 1;
      }
    }
    assert.deepStrictEqual([...got].sort(), [...small].sort(), `refused receives: ${refused}`);
    await simple.shutdown();
    await new Promise((resolve) => { setTimeout(resolve, 500); });
  } finally {
    strata.stop();
  }
});
