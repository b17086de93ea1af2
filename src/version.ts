// The version and commit are replaced at build time by the bundler; from a
// checkout they come from package.json and stay "dev" for the commit.
import packageJson from '../package.json' with { type: 'json' };

declare const __RWGPS_SYNC_COMMIT__: string | undefined;

export const VERSION: string = packageJson.version;
export const COMMIT: string = typeof __RWGPS_SYNC_COMMIT__ === 'string' ? __RWGPS_SYNC_COMMIT__ : 'dev';
