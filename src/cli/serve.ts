import { loadConfig } from '../config/config.ts';
import { createLogger, errorMessage } from '../log.ts';
import { startService } from '../service.ts';
import { configPath, parseCommandArgs, type Command } from './common.ts';

const USAGE = 'rwgps-sync serve [--config <file>]';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'receive webhooks and sync items until stopped (SIGTERM or SIGINT)',
  usage: USAGE,
  async run(context) {
    const { values } = parseCommandArgs(context.argv, {}, USAGE);
    if (values.help) {
      context.stdout.write(`${USAGE}\n\nReceives signed RWGPS webhooks on POST /webhooks/rwgps and syncs items in the background.\n`);
      return 0;
    }
    const config = loadConfig(configPath(values, context.env), context.env);
    const logger = createLogger({ level: config.log.level, sink: context.stdout });
    const service = await startService(config, logger);

    return new Promise<number>((resolve) => {
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info('stopping', { signal });
        service.close().then(
          () => resolve(0),
          (error: unknown) => {
            logger.error('shutdown failed', { error: errorMessage(error) });
            resolve(1);
          },
        );
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
  },
};
