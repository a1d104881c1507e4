/**
 * The daemon's /metrics (prom-client): its own series (CNI requests by command, plugin name and result, and
 * their latency) merged at scrape time with the registries of the services it hosts (IPAM today; policy and
 * the Kubernetes source add theirs the same way).
 */
import { Counter, Histogram, Registry } from 'prom-client';

/** Upper bounds in seconds: a CNI request takes milliseconds to seconds (delegates, netns, IPAM). */
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class DaemonMetrics {
  private readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'plexus_cni_requests_total',
    help: 'CNI requests answered, by command, the name the binary ran under, and result (ok or the CNI error code)',
    labelNames: ['node', 'command', 'plugin', 'result'],
    registers: [this.registry],
  });
  private readonly seconds = new Histogram({
    name: 'plexus_cni_request_seconds',
    help: 'Time to answer a CNI request, by command and the name the binary ran under',
    labelNames: ['node', 'command', 'plugin'],
    buckets: REQUEST_BUCKETS,
    registers: [this.registry],
  });

  constructor(
    private readonly node: string,
    private readonly hosted: readonly Registry[],
  ) {}

  /** One answered request; `result` is 'ok' or the CNI error code. */
  request(command: string, plugin: string, result: string, ms: number): void {
    this.requests.inc({ node: this.node, command, plugin, result });
    this.seconds.observe({ node: this.node, command, plugin }, ms / 1000);
  }

  /** Prometheus text of every series. */
  text(): Promise<string> {
    return Registry.merge([this.registry, ...this.hosted]).metrics();
  }
}
