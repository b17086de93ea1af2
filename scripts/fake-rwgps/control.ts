// The control API that other processes use over HTTP: POST /__fake/... calls
// the model methods of FakeRwgps.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { faultRuleFromJson } from './faults.ts';
import { jsonResponse, readJson, sendResponse } from './http.ts';
import type { FakeRwgps } from './server.ts';
import type { FakeClient, FakeItem, FakeUser, ItemType } from './types.ts';
import { errorMessage, FakeInputError, requireObject, validateDelay } from './validate.ts';

// Routes /__fake/... requests to the model methods. Bodies are JSON with the
// same fields as the methods' arguments. These requests are not recorded.
export async function handleControl(fake: FakeRwgps, request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
  const route = `${request.method ?? ''} ${url.pathname}`;
  const ok = () => sendResponse(response, jsonResponse(200, { ok: true }));
  try {
    switch (route) {
      case 'POST /__fake/clients':
        fake.addClient((await readJson(request)) as FakeClient);
        return ok();
      case 'POST /__fake/users':
        fake.addUser((await readJson(request)) as FakeUser);
        return ok();
      case 'POST /__fake/revoke':
        fake.revokeToken(requireObject(await readJson(request)).token as string);
        return ok();
      case 'POST /__fake/routes':
        fake.putRoute((await readJson(request)) as FakeItem);
        return ok();
      case 'POST /__fake/trips':
        fake.putTrip((await readJson(request)) as FakeItem);
        return ok();
      case 'POST /__fake/delete': {
        const body = requireObject(await readJson(request));
        fake.deleteItem(body.type as ItemType, body.id as number);
        return ok();
      }
      case 'POST /__fake/pin':
      case 'POST /__fake/unpin': {
        const body = requireObject(await readJson(request));
        const change = url.pathname === '/__fake/pin' ? fake.pin : fake.unpin;
        change.call(fake, body.userId as number, body.type as ItemType, body.id as number);
        return ok();
      }
      case 'POST /__fake/faults':
        fake.injectFault(faultRuleFromJson(await readJson(request)));
        return ok();
      case 'DELETE /__fake/faults':
        fake.clearFaults();
        return ok();
      case 'POST /__fake/oauth': {
        const body = requireObject(await readJson(request));
        try {
          fake.oauth.setSwitches(body);
        } catch (error) {
          throw new FakeInputError(errorMessage(error));
        }
        return ok();
      }
      case 'POST /__fake/sync-page-size': {
        const size = requireObject(await readJson(request)).size;
        if (size !== null && (typeof size !== 'number' || !Number.isInteger(size) || size < 1)) {
          throw new FakeInputError(`invalid size ${JSON.stringify(size)}: expected a positive integer or null`);
        }
        fake.syncPageSize = size;
        return ok();
      }
      case 'POST /__fake/latency': {
        const body = requireObject(await readJson(request));
        fake.latencyMs = validateDelay(body.latencyMs, 'latencyMs');
        return ok();
      }
      case 'GET /__fake/requests':
        return sendResponse(response, jsonResponse(200, { requests: fake.requests }));
      case 'DELETE /__fake/requests':
        fake.requests.length = 0;
        return ok();
      case 'POST /__fake/notifications/take':
        return sendResponse(response, jsonResponse(200, { notifications: fake.takeNotifications() }));
      case 'GET /__fake/changes': {
        const userId = Number(url.searchParams.get('userId'));
        const since = new Date(url.searchParams.get('since') ?? '1970-01-01T00:00:00Z');
        if (!Number.isInteger(userId) || Number.isNaN(since.getTime())) {
          throw new FakeInputError('invalid query: expected userId=<integer> and an optional ISO 8601 since');
        }
        return sendResponse(response, jsonResponse(200, { items: fake.changesSince(userId, since) }));
      }
      default:
        return sendResponse(response, jsonResponse(404, { error: `not found: no control endpoint ${route}` }));
    }
  } catch (error) {
    if (!(error instanceof FakeInputError)) throw error;
    console.error(JSON.stringify({ msg: 'fake rwgps rejected control request', route, error: error.message }));
    sendResponse(response, jsonResponse(400, { error: error.message }));
  }
}
