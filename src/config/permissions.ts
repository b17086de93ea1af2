import { statSync } from 'node:fs';
import type { Logger } from '../log.ts';
import type { Config } from './config.ts';

/**
 * Warns when the config file holds secrets inline and other users may read
 * it (group or others have the read bit). Returns true when it warned.
 * Secrets named by `<key>Env` are not in the file and need no warning.
 */
export function warnIfSecretsReadable(config: Config, logger: Logger): boolean {
  if (config.inlineSecretKeys.length === 0) return false;
  let mode: number;
  try {
    mode = statSync(config.file).mode & 0o777;
  } catch {
    return false;
  }
  if ((mode & 0o044) === 0) return false;
  logger.warn('config file holding secrets is readable by other users', {
    file: config.file,
    mode: `0${mode.toString(8)}`,
    secrets: config.inlineSecretKeys,
    fix: `chmod 600 ${config.file} (and chown it to the service user), or move the secrets to environment variables with <key>Env`,
  });
  return true;
}
