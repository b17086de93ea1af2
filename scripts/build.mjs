// npm run build: dist/rwgps-sync, one executable through Node's single
// executable applications (SEA), and dist/rwgps-sync.sha256.
//
// Steps: bundle src/main.ts with esbuild into one CommonJS file, write the
// SEA config (the bundle as main, better-sqlite3's addon as an asset),
// generate the blob with `node --experimental-sea-config`, copy this node
// binary, strip its debug symbols when that shrinks it, inject the blob with
// postject, then write the checksum and run `--version` as a smoke test.
//
// Options: --code-cache adds V8's code cache for the bundle to the blob
// (useCodeCache). It is off by default because it made no measurable
// difference to start-up here (docs/executable.md) and adds 0.3 MB.
// --no-strip keeps the symbols of the node copy and the addon.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

// Fixed by Node: the fuse string postject flips so node looks for a blob.
const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
// Must match NATIVE_ADDON_ASSET in src/store/sqlite-driver.ts.
const NATIVE_ADDON_ASSET = 'better_sqlite3.node';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const work = join(dist, 'build');
const bundlePath = join(work, 'rwgps-sync.cjs');
const blobPath = join(work, 'rwgps-sync.blob');
const seaConfigPath = join(work, 'sea-config.json');
const executablePath = join(dist, 'rwgps-sync');

const args = new Set(process.argv.slice(2));
for (const arg of args) {
  if (arg !== '--code-cache' && arg !== '--no-strip') {
    console.error(`build: unknown option ${arg}\nusage: node scripts/build.mjs [--code-cache] [--no-strip]`);
    process.exit(2);
  }
}
const useCodeCache = args.has('--code-cache');

function step(message) {
  console.log(`build: ${message}`);
}

function gitCommit() {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || 'unknown';
  } catch {
    return 'unknown';
  }
}

function nativeAddonPath() {
  // Resolved from better-sqlite3's own folder, where its install step built
  // or downloaded the addon.
  const require = createRequire(join(root, 'package.json'));
  const packageDir = dirname(require.resolve('better-sqlite3/package.json'));
  return join(packageDir, 'build', 'Release', 'better_sqlite3.node');
}

function megabytes(bytes) {
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

const commit = gitCommit();
step(`bundling src/main.ts at commit ${commit}`);
await build({
  entryPoints: [join(root, 'src/main.ts')],
  outfile: bundlePath,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  legalComments: 'none',
  define: { __RWGPS_SYNC_COMMIT__: JSON.stringify(commit) },
  logLevel: 'warning',
});
step(`bundle ${megabytes(statSync(bundlePath).size)}`);

const addon = join(work, NATIVE_ADDON_ASSET);
copyFileSync(nativeAddonPath(), addon);
if (!args.has('--no-strip')) stripIfSmaller(addon, ['--strip-unneeded']);
writeFileSync(
  seaConfigPath,
  JSON.stringify(
    {
      main: bundlePath,
      output: blobPath,
      disableExperimentalSEAWarning: true,
      useCodeCache,
      useSnapshot: false,
      assets: { [NATIVE_ADDON_ASSET]: addon },
    },
    null,
    2,
  ),
);
step(`generating the SEA blob (useCodeCache ${useCodeCache})`);
execFileSync(process.execPath, ['--experimental-sea-config', seaConfigPath], { cwd: work, stdio: 'inherit' });

step(`copying ${process.execPath}`);
rmSync(executablePath, { force: true });
copyFileSync(process.execPath, executablePath);
chmodSync(executablePath, 0o755);
if (!args.has('--no-strip')) stripIfSmaller(executablePath, ['--strip-all']);

step('injecting the blob with postject');
const postject = join(root, 'node_modules', '.bin', 'postject');
const injected = spawnSync(postject, [executablePath, 'NODE_SEA_BLOB', blobPath, '--sentinel-fuse', SENTINEL_FUSE], { encoding: 'utf8' });
// LIEF, inside postject, warns about every note section of a stripped ELF
// ("Can't find string offset for section name"); the injection is fine.
const postjectOutput = `${injected.stdout}${injected.stderr}`
  .split('\n')
  .filter((line) => line.trim() !== '' && !line.includes("Can't find string offset for section name"));
if (injected.status !== 0) {
  console.error(`build: postject failed with status ${injected.status}:\n${postjectOutput.join('\n')}`);
  process.exit(1);
}
for (const line of postjectOutput) console.log(`postject: ${line}`);

const digest = createHash('sha256').update(readFileSync(executablePath)).digest('hex');
// The format of sha256sum, so `sha256sum -c rwgps-sync.sha256` verifies it.
writeFileSync(`${executablePath}.sha256`, `${digest}  rwgps-sync\n`);

const version = spawnSync(executablePath, ['--version'], { encoding: 'utf8' });
if (version.status !== 0) {
  console.error(`build: ${executablePath} --version failed with status ${version.status}:\n${version.stderr}`);
  process.exit(1);
}
step(`${version.stdout.trim()}`);
step(`wrote ${executablePath} (${megabytes(statSync(executablePath).size)}) and ${executablePath}.sha256`);

/**
 * Strips debug information and static symbols from a copied ELF file when
 * `strip` exists and the file gets smaller. Neither option touches the
 * dynamic symbol table, so the addon still links against node.
 */
function stripIfSmaller(path, options) {
  const before = statSync(path).size;
  const stripped = `${path}.stripped`;
  const result = spawnSync('strip', [...options, '-o', stripped, path], { encoding: 'utf8' });
  if (result.error || result.status !== 0) {
    step(`not stripping ${path}: strip is unavailable or failed (${result.error?.message ?? result.stderr.trim()})`);
    rmSync(stripped, { force: true });
    return;
  }
  const after = statSync(stripped).size;
  if (after < before) {
    copyFileSync(stripped, path);
    step(`stripped ${path}: ${megabytes(before)} -> ${megabytes(after)}`);
  } else {
    step(`not stripping ${path}: it would not shrink the file (${megabytes(before)})`);
  }
  rmSync(stripped, { force: true });
}
