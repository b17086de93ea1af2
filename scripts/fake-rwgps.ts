// A fake Ride with GPS API for tests, the demo and benchmarks. It is a real
// HTTP server on 127.0.0.1 that serves routes, trips, the current user and the
// sync endpoint, and it injects faults on request. For each change to its model
// it produces the webhook notification that Ride with GPS would send.
//
// This file is the entry point; the parts live in fake-rwgps/:
//   model.ts            clients, users, tokens, items, change log, notifications
//   server.ts           FakeRwgps: the HTTP server, faults and latency
//   control.ts          the /__fake/... control API for other processes
//   representations.ts  route and trip JSON bodies
//   faults.ts           fault rules and their checks
//   oauth.ts            /oauth/authorize, /oauth/token.json, /oauth/revoke.json
//                       (`fake.oauth` holds their switches)
//   webhook.ts          signBody and sendWebhook
//   cli.ts              the command line
//   types.ts, validate.ts, http.ts  shared types, input checks, HTTP helpers
//
// Run directly for other processes: `npx tsx scripts/fake-rwgps.ts [--port N] [--latency MS]`.
// They control the model over POST /__fake/... (see fake-rwgps/control.ts).

import { pathToFileURL } from 'node:url';
import { runFakeRwgpsCli } from './fake-rwgps/cli.ts';

export { runFakeRwgpsCli } from './fake-rwgps/cli.ts';
export type { Fault, FaultRule } from './fake-rwgps/faults.ts';
export type { RecordedRequest } from './fake-rwgps/http.ts';
export { FakeOAuth, type OAuthSwitches } from './fake-rwgps/oauth.ts';
export { FakeRwgps, type FakeRwgpsOptions } from './fake-rwgps/server.ts';
export type {
  ChangeAction,
  ChangeEntry,
  FakeClient,
  FakeItem,
  FakeUser,
  ItemType,
  Notification,
  PinnedCollection,
  Visibility,
} from './fake-rwgps/types.ts';
export { FakeInputError } from './fake-rwgps/validate.ts';
export { sendWebhook, signBody } from './fake-rwgps/webhook.ts';

// NOTE: in a CommonJS bundle import.meta.url is empty, so the CLI does not
// start on its own there; call runFakeRwgpsCli from the bundle's entry point.
function isMainModule(): boolean {
  const entry = process.argv[1];
  return entry !== undefined && import.meta.url === pathToFileURL(entry).href;
}

if (isMainModule()) runFakeRwgpsCli(process.argv.slice(2));
