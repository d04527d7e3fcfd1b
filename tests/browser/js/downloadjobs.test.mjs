// Unit tests of the browser client (api/downloadjobs_api/static/downloadjobs.js) under
// Node's built-in test runner: the backoff schedule, the state machine and the polling
// loop, driven by a fake clock and a scripted fetch so every wait is checked exactly.
// Run: node --test tests/browser/js/   (tests/browser/test_client_unit.py runs it in CI)

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  DEFAULT_SCHEDULE,
  DownloadJobsClient,
  MemoryStorage,
  initialState,
  nextPoll,
  parseRetryAfter,
  pollDelay,
  reduce,
  retryDelay,
  statusLabel,
} from '../../../api/downloadjobs_api/static/downloadjobs.js';

/** A manual clock: timers run only when the test says so, in time order. */
function fakeClock() {
  let now = 1_700_000_000_000;
  let seq = 0;
  /** @type {{id: number, at: number, ms: number, fn: () => void}[]} */
  const queue = [];
  return {
    now: () => now,
    timers: {
      setTimeout(fn, ms) {
        const id = ++seq;
        queue.push({ id, at: now + ms, ms, fn });
        return id;
      },
      clearTimeout(id) {
        const index = queue.findIndex((timer) => timer.id === id);
        if (index >= 0) queue.splice(index, 1);
      },
    },
    pending: () => queue.length,
    /** Run the next timer and let the promises it starts settle; returns its delay. */
    async next() {
      assert.ok(queue.length > 0, 'no timer is pending');
      queue.sort((a, b) => a.at - b.at);
      const timer = /** @type {NonNullable<typeof queue[0]>} */ (queue.shift());
      now = timer.at;
      timer.fn();
      await settle();
      return timer.ms;
    },
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

/**
 * A scripted server: each reply is a Response, an Error (thrown as a network error) or a
 * function of the request. Records every request.
 * @param {Array<Response|Error|((url: string, init: RequestInit) => Response)>} replies
 */
function scriptedFetch(replies) {
  /** @type {{url: string, method: string, headers: Record<string, string>}[]} */
  const calls = [];
  const fetch = async (/** @type {string} */ url, /** @type {RequestInit} */ init = {}) => {
    calls.push({ url, method: init.method ?? 'GET', headers: /** @type {any} */ (init.headers ?? {}) });
    const reply = replies.shift();
    if (reply === undefined) throw new Error(`unexpected request ${init.method ?? 'GET'} ${url}`);
    if (reply instanceof Error) throw reply;
    return typeof reply === 'function' ? reply(url, init) : reply;
  };
  return { fetch, calls };
}

const JOB = '5b0c0000-0000-4000-8000-000000000001';

/** @param {object} body @param {number} [status] @param {Record<string, string>} [headers] */
function json(body, status = 200, headers = {}) {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

/** @param {Partial<import('../../../api/downloadjobs_api/static/downloadjobs.js').JobUpdate> & {status: string}} fields */
function answer(fields, headers = {}) {
  return json({ jobId: JOB, progress: 0, attempts: 1, ...fields }, 200, headers);
}

function makeClient(replies, extra = {}) {
  const clock = fakeClock();
  const server = scriptedFetch(replies);
  /** @type {string[]} */
  const navigations = [];
  const client = new DownloadJobsClient({
    baseUrl: 'http://api.test/',
    fetch: server.fetch,
    storage: new MemoryStorage(),
    timers: clock.timers,
    now: clock.now,
    random: () => 0.5,
    navigate: (url) => navigations.push(url),
    ...extra,
  });
  return { client, clock, server, navigations };
}

describe('backoff schedule', () => {
  test('polls start at 2 s and grow towards 5 s, never beyond', () => {
    const delays = Array.from({ length: 9 }, (_, polls) => pollDelay(polls));
    assert.deepEqual(delays, [2000, 2400, 2880, 3456, 4147, 4977, 5000, 5000, 5000]);
  });

  test('network retries double from 1 s up to 15 s, with equal jitter', () => {
    const low = [1, 2, 3, 4, 5, 6, 10].map((attempt) => retryDelay(attempt, DEFAULT_SCHEDULE, () => 0));
    const high = [1, 2, 3, 4, 5, 6, 10].map((attempt) => retryDelay(attempt, DEFAULT_SCHEDULE, () => 0.999999));
    assert.deepEqual(low, [500, 1000, 2000, 4000, 7500, 7500, 7500]);
    assert.deepEqual(high, [1000, 2000, 4000, 8000, 15000, 15000, 15000]);
  });

  test('Retry-After is read as seconds or as an HTTP date', () => {
    const now = Date.parse('Sat, 28 Nov 2026 18:00:00 GMT');
    assert.equal(parseRetryAfter('7', now), 7000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
    assert.equal(parseRetryAfter('Sat, 28 Nov 2026 18:00:30 GMT', now), 30000);
    assert.equal(parseRetryAfter('Sat, 28 Nov 2026 17:00:00 GMT', now), 0);
    assert.equal(parseRetryAfter('soon', now), null);
    assert.equal(parseRetryAfter(null, now), null);
  });
});

describe('state machine', () => {
  test('queued, processing, completed; then nothing moves it', () => {
    let state = initialState(JOB);
    state = reduce(state, { type: 'answer', body: { status: 'queued', progress: 0, queuePosition: 4 } });
    assert.equal(state.queuePosition, 4);
    assert.equal(statusLabel(state), 'Queued, 3 ahead of you');
    state = reduce(state, { type: 'answer', body: { status: 'processing', progress: 45, queuePosition: 2, attempts: 1 } });
    assert.equal(state.queuePosition, null, 'a running job has no queue position');
    assert.equal(statusLabel(state), 'Preparing your download… 45%');
    const url = 'http://s3.test/b.zip?X-Amz-Signature=x';
    state = reduce(state, { type: 'answer', body: { status: 'completed', progress: 100, result: { downloadUrl: url, size: 3 } } });
    assert.equal(state.terminal, true);
    assert.equal(state.downloadUrl, url);
    assert.equal(reduce(state, { type: 'answer', body: { status: 'processing' } }), state);
    assert.equal(reduce(state, { type: 'cancelled' }), state);
  });

  test('labels: next in line, a retried job, reconnecting, failure, cancel', () => {
    const base = initialState(JOB);
    assert.equal(statusLabel({ ...base, status: 'queued', queuePosition: 1 }), 'Queued, you are next');
    assert.equal(statusLabel({ ...base, status: 'queued' }), 'Queued');
    assert.equal(statusLabel({ ...base, status: 'processing', attempts: 2, progress: 10 }), 'Retrying, attempt 2 — 10%');
    const lost = reduce(reduce({ ...base, status: 'processing' }, { type: 'unreachable' }), { type: 'unreachable' });
    assert.equal(lost.reconnecting, true);
    assert.equal(lost.status, 'processing', 'a network error never changes what the job is');
    assert.equal(statusLabel(lost), 'Reconnecting… (attempt 2)');
    const back = reduce(lost, { type: 'answer', body: { status: 'processing', progress: 50 } });
    assert.equal(back.reconnecting, false);
    assert.equal(back.retryAttempt, 0);
    const failed = reduce(base, {
      type: 'answer',
      body: { status: 'failed', error: { reason: 'AllFilesMissing', message: 'none of the 2 files exist' } },
    });
    assert.equal(statusLabel(failed), 'Failed: none of the 2 files exist');
    assert.equal(statusLabel(reduce(base, { type: 'cancelled' })), 'Cancelled');
    const gone = reduce(base, { type: 'gone' });
    assert.equal(gone.status, 'failed');
    assert.equal(gone.error?.reason, 'NotFound');
  });
});

describe('polling', () => {
  test('a download: initiate, poll on the schedule, report, stop, navigate', async () => {
    const url = 'http://s3.test/bundle.zip?sig';
    const { client, clock, server, navigations } = makeClient([
      json({ jobId: JOB, status: 'queued', totalFileIds: 2 }, 202),
      answer({ status: 'queued', queuePosition: 2 }),
      answer({ status: 'processing', progress: 20 }),
      answer({ status: 'processing', progress: 70 }),
      answer({ status: 'completed', progress: 100, result: { downloadUrl: url, size: 9 } }),
    ]);
    /** @type {string[]} */
    const seen = [];
    const handle = await client.start([70000, 70001], (state) => seen.push(statusLabel(state)), { onComplete: 'download' });
    assert.deepEqual(client.pendingJobs().map((job) => job.jobId), [JOB]);
    const delays = [];
    while (clock.pending()) delays.push(await clock.next());
    assert.deepEqual(delays, [2000, 2400, 2880, 3456]);
    assert.deepEqual(seen, [
      'Queued',
      'Queued, 1 ahead of you',
      'Preparing your download… 20%',
      'Preparing your download… 70%',
      'Download ready',
    ]);
    assert.deepEqual(navigations, [url]);
    assert.equal((await handle.done).status, 'completed');
    assert.deepEqual(client.pendingJobs(), [], 'a finished job is no longer pending');
    assert.equal(client.recentJobs()[0]?.status, 'completed');
    assert.deepEqual(client.recentJobs()[0]?.fileIds, [70000, 70001]);
    assert.equal(server.calls[0]?.method, 'POST');
    assert.equal(server.calls[1]?.url, `http://api.test/v1/download/jobs/${JOB}`);
  });

  test('link mode reports the URL and does not navigate', async () => {
    const { client, clock, navigations } = makeClient([
      answer({ status: 'completed', progress: 100, result: { downloadUrl: 'http://s3.test/x', size: 1 } }),
    ]);
    const handle = client.watch(JOB, () => {}, { onComplete: 'link' });
    await clock.next();
    assert.equal(handle.state().downloadUrl, 'http://s3.test/x');
    assert.deepEqual(navigations, []);
  });

  test('Retry-After: a floor on 429/503, a hint within 2-5 s on a 200', async () => {
    const { client, clock } = makeClient([
      answer({ status: 'processing', progress: 5 }, { 'Retry-After': '4' }),
      answer({ status: 'processing', progress: 6 }, { 'Retry-After': '30' }),
      answer({ status: 'processing', progress: 7 }, { 'Retry-After': '1' }),
      json({ error: 'TOO_MANY_REQUESTS', message: 'slow down' }, 429, { 'Retry-After': '12' }),
      json({ error: 'SERVICE_UNAVAILABLE', message: 'busy' }, 503, { 'Retry-After': '20' }),
      answer({ status: 'completed', progress: 100, result: { downloadUrl: 'u' } }),
    ]);
    client.watch(JOB, () => {}, { immediate: true });
    assert.equal(await clock.next(), 0);
    assert.equal(await clock.next(), 4000, 'a 200 suggesting 4 s: 4 s, not the scheduled 2.4 s');
    assert.equal(await clock.next(), 5000, 'a 200 suggesting 30 s: capped at 5 s');
    assert.equal(await clock.next(), 3456, 'a 200 suggesting 1 s: the schedule still applies');
    assert.equal(await clock.next(), 12000, 'a 429 waits its Retry-After');
    assert.equal(await clock.next(), 20000, 'a 503 waits its Retry-After');
    assert.equal(clock.pending(), 0);
  });

  test('nextPoll: the schedule, bent by a hint but kept within the window', () => {
    assert.equal(nextPoll(1, null), 2400);
    assert.equal(nextPoll(1, 3000), 3000);
    assert.equal(nextPoll(1, 60000), 5000);
    assert.equal(nextPoll(1, 0), 2400);
    assert.equal(nextPoll(9, 1000), 5000);
  });

  test('an ETag is sent back and a 304 reuses the last answer', async () => {
    const { client, clock, server } = makeClient([
      answer({ status: 'processing', progress: 30 }, { ETag: '"v1"' }),
      new Response(null, { status: 304, headers: { ETag: '"v1"' } }),
      answer({ status: 'processing', progress: 60 }, { ETag: '"v2"' }),
      answer({ status: 'completed', progress: 100, result: { downloadUrl: 'u' } }),
    ]);
    /** @type {number[]} */
    const progress = [];
    client.watch(JOB, (state) => progress.push(state.progress), { immediate: true });
    while (clock.pending()) await clock.next();
    assert.deepEqual(
      server.calls.map((call) => call.headers['If-None-Match'] ?? null),
      [null, '"v1"', '"v1"', '"v2"'],
    );
    assert.deepEqual(progress, [0, 30, 30, 60, 100]);
  });

  test('network errors and 5xx: reconnecting, back-off with jitter, never given up', async () => {
    const { client, clock, server } = makeClient(
      [
        answer({ status: 'processing', progress: 10 }),
        new TypeError('Failed to fetch'),
        new TypeError('Failed to fetch'),
        json({ error: 'SERVICE_UNAVAILABLE', message: 'down' }, 503),
        new TypeError('Failed to fetch'),
        answer({ status: 'processing', progress: 80 }),
        answer({ status: 'completed', progress: 100, result: { downloadUrl: 'u' } }),
      ],
      { random: () => 0 },
    );
    /** @type {string[]} */
    const labels = [];
    client.watch(JOB, (state) => labels.push(statusLabel(state)), { immediate: true });
    const delays = [];
    while (clock.pending()) delays.push(await clock.next());
    // 0 (immediate), 2400 (schedule), then back-off 500, 1000, 2000, 4000 (random 0: half of 1, 2, 4, 8 s).
    assert.deepEqual(delays, [0, 2400, 500, 1000, 2000, 4000, 2880]);
    assert.deepEqual(labels, [
      'Queued',
      'Preparing your download… 10%',
      'Reconnecting… (attempt 1)',
      'Reconnecting… (attempt 2)',
      'Reconnecting… (attempt 3)',
      'Reconnecting… (attempt 4)',
      'Preparing your download… 80%',
      'Download ready',
    ]);
    assert.equal(server.calls.length, 7);
  });

  test('cancel: DELETE, Cancelled, and no request after it', async () => {
    const { client, clock, server } = makeClient([
      answer({ status: 'processing', progress: 40 }),
      json({ jobId: JOB, status: 'processing', progress: 40 }, 202),
    ]);
    const handle = client.watch(JOB, () => {}, { immediate: true });
    await clock.next();
    assert.equal(clock.pending(), 1, 'the next poll is scheduled');
    const final = await handle.cancel();
    assert.equal(final.status, 'cancelled');
    assert.equal(statusLabel(final), 'Cancelled');
    assert.equal(clock.pending(), 0, 'no poll is scheduled after a cancel');
    assert.deepEqual(server.calls.map((call) => call.method), ['GET', 'DELETE']);
    assert.deepEqual(client.pendingJobs(), []);
  });

  test('cancel too late (409) reports how the job really ended', async () => {
    const { client, clock } = makeClient([
      answer({ status: 'processing', progress: 90 }),
      json({ error: 'CONFLICT', message: 'completed already' }, 409),
      answer({ status: 'completed', progress: 100, result: { downloadUrl: 'u' } }),
    ]);
    const handle = client.watch(JOB, () => {}, { immediate: true });
    await clock.next();
    assert.equal((await handle.cancel()).status, 'completed');
    assert.equal(clock.pending(), 0);
  });

  test('a refresh resumes the pending jobs at once, not the finished ones', async () => {
    const storage = new MemoryStorage();
    const done = '5b0c0000-0000-4000-8000-000000000002';
    storage.setItem(
      'downloadjobs.jobs',
      JSON.stringify([
        { jobId: JOB, fileIds: [70000], createdAt: '2026-11-28T18:00:00Z', status: 'processing', progress: 35 },
        { jobId: done, fileIds: [70001], createdAt: '2026-11-28T17:00:00Z', status: 'completed', progress: 100 },
      ]),
    );
    const { client, clock, server } = makeClient(
      [answer({ status: 'processing', progress: 50 }), answer({ status: 'completed', progress: 100, result: { downloadUrl: 'u' } })],
      { storage },
    );
    /** @type {string[]} */
    const labels = [];
    const handles = client.resume((state) => labels.push(statusLabel(state)));
    assert.deepEqual(handles.map((handle) => handle.jobId), [JOB]);
    assert.equal(await clock.next(), 0, 'a resumed job is asked at once');
    await clock.next();
    assert.deepEqual(labels, ['Preparing your download… 35%', 'Preparing your download… 50%', 'Download ready']);
    assert.ok(server.calls.every((call) => call.url.endsWith(JOB)));
  });

  test('a job the server does not know (404) fails and stops', async () => {
    const { client, clock } = makeClient([json({ error: 'NOT_FOUND', message: 'no such job' }, 404)]);
    const handle = client.watch(JOB, () => {}, { immediate: true });
    await clock.next();
    assert.equal(handle.state().status, 'failed');
    assert.equal(handle.state().error?.reason, 'NotFound');
    assert.equal(clock.pending(), 0);
  });

  test('stop (an unmount) stops polling but keeps the job pending', async () => {
    const { client, clock, server } = makeClient([answer({ status: 'processing', progress: 10 })]);
    client.remember({ jobId: JOB, status: 'processing' });
    const handle = client.watch(JOB, () => {}, { immediate: true });
    await clock.next();
    handle.stop();
    assert.equal(clock.pending(), 0);
    assert.equal(server.calls.length, 1);
    assert.deepEqual(client.pendingJobs().map((job) => job.jobId), [JOB]);
  });

  test('initiate waits out a 429 with Retry-After, and reports a 400 envelope', async () => {
    const { client, clock } = makeClient([
      json({ error: 'TOO_MANY_REQUESTS', message: 'slow down' }, 429, { 'Retry-After': '3' }),
      json({ jobId: JOB, status: 'queued', totalFileIds: 1 }, 202),
      json({ error: 'VALIDATION_ERROR', message: 'file_ids: too short', requestId: 'r1' }, 400),
    ]);
    const pending = client.initiate([70000]);
    await settle();
    assert.equal(await clock.next(), 3000);
    assert.equal((await pending).jobId, JOB);
    await assert.rejects(client.initiate([]), { name: 'DownloadJobsError', status: 400, code: 'VALIDATION_ERROR', requestId: 'r1' });
  });
});
