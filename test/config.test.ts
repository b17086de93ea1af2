import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig, parseConfig } from '../src/config/config.ts';
import { CLIENT, REPO_ROOT, runCli, tempDir, writeConfig } from './helpers.ts';

const SECRET = 'very-secret-value-31c9';
const FILE = '/etc/rwgps-sync/config.json';

function configError(config: unknown, env: NodeJS.ProcessEnv = {}): ConfigError {
  const text = typeof config === 'string' ? config : JSON.stringify(config);
  try {
    parseConfig(text, FILE, env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  assert.fail(`config was accepted: ${text}`);
}

const client = { apiKey: 'k', clientId: 'c', clientSecret: SECRET };

test('config defaults applied', () => {
  const config = parseConfig(JSON.stringify({ clients: [client] }), FILE, {});
  assert.equal(config.server.host, '127.0.0.1');
  assert.equal(config.server.port, 8787);
  assert.equal(config.database.path, '/etc/rwgps-sync/rwgps-sync.db', 'relative to the config file');
  assert.equal(config.rwgps.baseUrl, 'https://ridewithgps.com');
  assert.equal(config.worker.concurrency, 4);
  assert.equal(config.worker.maxAttempts, 12);
  assert.equal(config.file, FILE);
});

test('config example is valid', () => {
  const text = readFileSync(join(REPO_ROOT, 'config.example.json'), 'utf8');
  const config = parseConfig(text, join(REPO_ROOT, 'config.example.json'), { RWGPS_SYNC_CLIENT_SECRET: SECRET });
  assert.equal(config.clients[0]?.clientSecret, SECRET);
});

test('config unknown key named', () => {
  const error = configError({ clients: [client], server: { prot: 80 } });
  assert.equal(error.file, FILE);
  assert.equal(error.key, 'server.prot');
  assert.match(error.message, /^\/etc\/rwgps-sync\/config\.json: server\.prot: unknown key; known keys here: host, port, publicUrl$/);
});

test('config wrong type names value', () => {
  const error = configError({ clients: [client], server: { port: 'eighty' } });
  assert.equal(error.key, 'server.port');
  assert.match(error.message, /config\.json: server\.port: expected an integer from 0 to 65535, found "eighty"/);
});

test('config out of range names value', () => {
  const error = configError({ clients: [client], worker: { concurrency: 0 } });
  assert.match(error.message, /worker\.concurrency: expected an integer from 1 to 256, found 0/);
});

test('config missing secret named', () => {
  const error = configError({ clients: [{ apiKey: 'k', clientId: 'c' }] });
  assert.equal(error.key, 'clients[0].clientSecret');
  assert.match(error.message, /missing; set "clientSecret" or name an environment variable in "clientSecretEnv"/);
});

test('config missing clients named', () => {
  const error = configError({});
  assert.equal(error.key, 'clients');
  assert.match(error.message, /expected an array with at least 1 entry, found an array of 0 entries/);
});

test('config malformed JSON rejected', () => {
  const error = configError('{"clients": [');
  assert.equal(error.file, FILE);
  assert.match(error.message, /not valid JSON/);
});

test('config missing file rejected', () => {
  assert.throws(() => loadConfig('/nonexistent/dir/config.json', {}), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /^\/nonexistent\/dir\/config\.json: file not found; pass --config/);
    return true;
  });
});

test('config secret from environment', () => {
  const config = parseConfig(JSON.stringify({ clients: [{ apiKey: 'k', clientId: 'c', clientSecretEnv: 'MY_SECRET' }] }), FILE, { MY_SECRET: SECRET });
  assert.equal(config.clients[0]?.clientSecret, SECRET);
});

test('config unset secret variable named', () => {
  const error = configError({ clients: [{ apiKey: 'k', clientId: 'c', clientSecretEnv: 'MY_SECRET' }] }, {});
  assert.equal(error.key, 'clients[0].clientSecretEnv');
  assert.match(error.message, /environment variable MY_SECRET is not set or empty/);
});

test('config both secret forms rejected', () => {
  const error = configError({ clients: [{ ...client, clientSecretEnv: 'MY_SECRET' }] }, { MY_SECRET: 'x' });
  assert.match(error.message, /set either "clientSecret" or "clientSecretEnv", not both/);
  assert.ok(!error.message.includes(SECRET));
});

test('config errors never print secrets', () => {
  const cases: unknown[] = [
    { clients: [{ apiKey: 'k', clientId: 'c', clientSecret: 12345 }] },
    { clients: { apiKey: 'k', clientId: 'c', clientSecret: SECRET } },
    [{ clients: [client] }],
    { clients: [client, { apiKey: 'k', clientId: 'c', clientSecret: SECRET }] },
    { clients: [SECRET] },
    { clients: [[SECRET]] },
  ];
  for (const config of cases) {
    const error = configError(config);
    assert.ok(!error.message.includes(SECRET), `secret printed: ${error.message}`);
    assert.ok(!error.message.includes('12345'), `secret digits printed: ${error.message}`);
  }
  assert.match(configError(cases[0]).message, /clients\[0\]\.clientSecret: expected a string, found \(a hidden value\)/);
  assert.match(configError(cases[1]).message, /clients: expected an array, found an object with keys apiKey, clientId, clientSecret/);
  assert.match(configError(cases[3]).message, /clients\[1\]\.apiKey: duplicate API key "k"/);
});

test('config relations checked', () => {
  assert.match(configError({ clients: [client], worker: { backoffBaseMs: 1000, backoffMaxMs: 500 } }).message, /worker\.backoffMaxMs: expected at least/);
  assert.match(configError({ clients: [client], worker: { leaseMs: 5000, requestTimeoutMs: 5000 } }).message, /worker\.leaseMs: expected more than/);
  assert.match(configError({ clients: [client], rwgps: { baseUrl: 'ftp://x' } }).message, /rwgps\.baseUrl: expected a https or http URL/);
});

test('config errors exit 2 from the CLI', async (t) => {
  const dir = tempDir(t);
  const cases: { name: string; text: string; env?: NodeJS.ProcessEnv; pattern: RegExp }[] = [
    { name: 'unknown key', text: JSON.stringify({ clients: [client], bogus: true }), pattern: /: bogus: unknown key/ },
    { name: 'wrong type', text: JSON.stringify({ clients: [client], server: { port: '8080' } }), pattern: /server\.port: expected an integer .*found "8080"/ },
    { name: 'missing secret', text: JSON.stringify({ clients: [{ apiKey: 'k', clientId: 'c' }] }), pattern: /clients\[0\]\.clientSecret: missing/ },
    { name: 'malformed', text: '{ "clients": [ }', pattern: /not valid JSON/ },
    {
      name: 'unset variable',
      text: JSON.stringify({ clients: [{ apiKey: 'k', clientId: 'c', clientSecretEnv: 'RWGPS_TEST_UNSET_SECRET' }] }),
      pattern: /clients\[0\]\.clientSecretEnv: environment variable RWGPS_TEST_UNSET_SECRET is not set/,
    },
    { name: 'secret as number', text: JSON.stringify({ clients: [{ apiKey: 'k', clientId: 'c', clientSecret: 31_415_926 }] }), pattern: /hidden value/ },
  ];
  const results = await Promise.all(
    cases.map((entry, index) => {
      const path = writeConfig(dir, entry.text, `config-${index}.json`);
      return runCli(['serve', '--config', path], { env: entry.env ?? {} }).then((result) => ({ entry, path, result }));
    }),
  );
  for (const { entry, path, result } of results) {
    assert.equal(result.code, 2, `${entry.name}: exit code`);
    assert.equal(result.stdout, '', `${entry.name}: nothing on stdout`);
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `${entry.name}: one message`);
    assert.ok(lines[0]!.includes(path), `${entry.name}: names the file`);
    assert.match(lines[0]!, entry.pattern, `${entry.name}: names key and value`);
    assert.ok(!result.stderr.includes(SECRET), `${entry.name}: no secret`);
    assert.ok(!result.stderr.includes('31415926'), `${entry.name}: no secret digits`);
  }

  const missing = await runCli(['users', 'list', '--config', join(dir, 'absent.json')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /absent\.json: file not found/);

  const fromEnv = await runCli(['users', 'list'], { env: { RWGPS_SYNC_CONFIG: join(dir, 'absent-env.json') } });
  assert.equal(fromEnv.code, 2);
  assert.match(fromEnv.stderr, /absent-env\.json: file not found/, 'RWGPS_SYNC_CONFIG is read');
  assert.ok(!CLIENT.clientSecret.includes(SECRET));
});
