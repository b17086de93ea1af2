// A small metrics registry that writes the Prometheus text exposition format
// (version 0.0.4): counters, gauges and histograms with labels. The service
// needs about a dozen metrics, which does not justify a dependency.

export type Labels = Record<string, string>;

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  render(lines: string[]): void;
}

/** Seconds buckets for request and job durations, from 10 ms to 2 min. */
export const DURATION_BUCKETS_SECONDS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class Registry {
  readonly #families: Family[] = [];

  counter(name: string, help: string): Counter {
    return this.#add(new Counter(name, help));
  }

  gauge(name: string, help: string): Gauge {
    return this.#add(new Gauge(name, help));
  }

  histogram(name: string, help: string, buckets = DURATION_BUCKETS_SECONDS): Histogram {
    return this.#add(new Histogram(name, help, buckets));
  }

  /** Returns every metric in the text exposition format. */
  render(): string {
    const lines: string[] = [];
    for (const family of this.#families) {
      lines.push(`# HELP ${family.name} ${family.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
      lines.push(`# TYPE ${family.name} ${family.type}`);
      family.render(lines);
    }
    return `${lines.join('\n')}\n`;
  }

  #add<T extends Family>(family: T): T {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(family.name)) throw new Error(`invalid metric name "${family.name}"`);
    if (this.#families.some((existing) => existing.name === family.name)) throw new Error(`metric "${family.name}" registered twice`);
    this.#families.push(family);
    return family;
  }
}

function labelKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
}

function formatLabels(labels: Labels, extra?: [string, string]): string {
  const entries = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
  if (extra) entries.push(extra);
  if (entries.length === 0) return '';
  const body = entries
    .map(([key, value]) => `${key}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');
  return `{${body}}`;
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

class Series {
  readonly #values = new Map<string, { labels: Labels; value: number }>();

  add(labels: Labels, delta: number): void {
    const key = labelKey(labels);
    const entry = this.#values.get(key);
    if (entry) entry.value += delta;
    else this.#values.set(key, { labels: { ...labels }, value: delta });
  }

  set(labels: Labels, value: number): void {
    this.#values.set(labelKey(labels), { labels: { ...labels }, value });
  }

  clear(): void {
    this.#values.clear();
  }

  render(name: string, lines: string[]): void {
    for (const { labels, value } of this.#values.values()) lines.push(`${name}${formatLabels(labels)} ${formatNumber(value)}`);
  }
}

export class Counter implements Family {
  readonly type = 'counter';
  readonly #series = new Series();

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Labels = {}, delta = 1): void {
    if (delta < 0) throw new Error(`counter ${this.name} cannot decrease`);
    this.#series.add(labels, delta);
  }

  render(lines: string[]): void {
    this.#series.render(this.name, lines);
  }
}

export class Gauge implements Family {
  readonly type = 'gauge';
  readonly #series = new Series();

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  set(value: number, labels: Labels = {}): void {
    this.#series.set(labels, value);
  }

  /** Drops every series, before a collector sets the current ones (a state with no jobs left disappears). */
  reset(): void {
    this.#series.clear();
  }

  render(lines: string[]): void {
    this.#series.render(this.name, lines);
  }
}

export class Histogram implements Family {
  readonly type = 'histogram';
  readonly #series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {}

  observe(value: number, labels: Labels = {}): void {
    const key = labelKey(labels);
    let entry = this.#series.get(key);
    if (!entry) {
      entry = { labels: { ...labels }, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.#series.set(key, entry);
    }
    // Buckets are cumulative in the exposition format: each counts values <= its bound.
    this.buckets.forEach((bound, index) => {
      if (value <= bound) entry.counts[index]! += 1;
    });
    entry.sum += value;
    entry.count += 1;
  }

  render(lines: string[]): void {
    for (const { labels, counts, sum, count } of this.#series.values()) {
      this.buckets.forEach((bound, index) => {
        lines.push(`${this.name}_bucket${formatLabels(labels, ['le', formatNumber(bound)])} ${counts[index]}`);
      });
      lines.push(`${this.name}_bucket${formatLabels(labels, ['le', '+Inf'])} ${count}`);
      lines.push(`${this.name}_sum${formatLabels(labels)} ${formatNumber(sum)}`);
      lines.push(`${this.name}_count${formatLabels(labels)} ${count}`);
    }
  }
}
