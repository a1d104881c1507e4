/**
 * The PodResources lookup against a fake kubelet speaking gRPC on a unix socket (test/helpers/fake-kubelet.ts,
 * built from the full v1 API), and against checkpoint files in both forms.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { FakeKubelet } from '../test/helpers/fake-kubelet';
import { checkpointDevices, PodResources } from './pod-resources';

const log = pino({ level: 'silent' });
const RES = 'intel.com/sriov_netdevice';
const OTHER = 'intel.com/sriov_dpdk';

let dir: string;
let kubelet: FakeKubelet;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plx-podres-'));
  kubelet = await FakeKubelet.start(join(dir, 'kubelet.sock'));
  kubelet.pods = [
    {
      namespace: 'telco', name: 'cnf-1',
      containers: [
        { name: 'app', devices: { [RES]: ['0000:af:06.3', '0000:af:06.1'], [OTHER]: ['0000:b1:02.0'] } },
        { name: 'sidecar', devices: { [RES]: ['0000:af:06.2'] } },
      ],
    },
    { namespace: 'telco', name: 'cnf-2', containers: [{ name: 'app', devices: { [RES]: ['0000:af:07.0'] } }] },
  ];
});

afterEach(async () => {
  await kubelet.stop();
  rmSync(dir, { recursive: true, force: true });
});

const lookup = (extra: Partial<ConstructorParameters<typeof PodResources>[0]> = {}) =>
  new PodResources({ socket: kubelet.socket, checkpoint: join(dir, 'kubelet_internal_checkpoint'), timeoutMs: 1000, cacheMs: 1000, ...extra }, log);

test('Get: every container\'s devices per resource, sorted as Multus hands them out; unrequested resources left out', async () => {
  const pr = lookup();
  await expect(pr.devicesFor({ namespace: 'telco', name: 'cnf-1' }, [RES])).resolves.toEqual({ devices: { [RES]: ['0000:af:06.1', '0000:af:06.2', '0000:af:06.3'] } });
  await expect(pr.devicesFor({ namespace: 'telco', name: 'cnf-1' }, [RES, OTHER, 'x/none'])).resolves.toEqual({
    devices: { [RES]: ['0000:af:06.1', '0000:af:06.2', '0000:af:06.3'], [OTHER]: ['0000:b1:02.0'] },
  });
  expect(kubelet.calls).toMatchObject({ Get: 2, List: 0 });
  pr.close();
});

test.each([['an older kubelet (Get UNIMPLEMENTED)', 'unimplemented'], ['a kubelet with the Get gate off (UNKNOWN "Get method disabled")', 'disabled']] as const)('%s: List, shared by concurrent lookups and reused, fresh once for a pod it lacked', async (_t, mode) => {
  kubelet.getMode = mode;
  kubelet.delayMs = 50;
  const pr = lookup();
  const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => pr.devicesFor({ namespace: 'telco', name: i % 2 ? 'cnf-1' : 'cnf-2' }, [RES])));
  expect(answers[0]).toEqual({ devices: { [RES]: ['0000:af:07.0'] } });
  expect(answers[1]).toEqual({ devices: { [RES]: ['0000:af:06.1', '0000:af:06.2', '0000:af:06.3'] } });
  expect(kubelet.calls.Get).toBe(1); // asked once, then remembered
  expect(kubelet.calls.List).toBe(1);
  // A pod admitted after the cached answer: one fresh List finds it.
  kubelet.pods.push({ namespace: 'telco', name: 'cnf-3', containers: [{ name: 'app', devices: { [RES]: ['0000:af:07.1'] } }] });
  await expect(pr.devicesFor({ namespace: 'telco', name: 'cnf-3' }, [RES])).resolves.toEqual({ devices: { [RES]: ['0000:af:07.1'] } });
  expect(kubelet.calls.List).toBe(2);
  pr.close();
});

test('kubelet unreachable or too slow: the checkpoint, matched by pod UID, within the timeout', async () => {
  writeFileSync(join(dir, 'kubelet_internal_checkpoint'), JSON.stringify({
    Data: {
      PodDeviceEntries: [
        { PodUID: 'uid-1', ContainerName: 'app', ResourceName: RES, DeviceIDs: { '0': ['0000:af:06.3'], '1': ['0000:af:06.1'] }, AllocResp: 'CgA=' },
        { PodUID: 'uid-2', ContainerName: 'app', ResourceName: RES, DeviceIDs: ['0000:af:07.0'], AllocResp: 'CgA=' },
      ],
      RegisteredDevices: { [RES]: ['0000:af:06.1', '0000:af:06.3', '0000:af:07.0'] },
    },
    Checksum: 1234,
  }));
  kubelet.delayMs = 2000;
  const slow = lookup({ timeoutMs: 200 });
  const t0 = Date.now();
  const answer = await slow.devicesFor({ namespace: 'telco', name: 'cnf-1', uid: 'uid-1' }, [RES]);
  expect(answer).toEqual({ devices: { [RES]: ['0000:af:06.1', '0000:af:06.3'] }, problem: expect.stringMatching(/kubelet PodResources API at .*DEADLINE_EXCEEDED|Deadline/) });
  expect(Date.now() - t0).toBeLessThan(1500);
  slow.close();
  const gone = lookup({ socket: join(dir, 'no-kubelet.sock') });
  await expect(gone.devicesFor({ namespace: 'telco', name: 'old', uid: 'uid-2' }, [RES])).resolves.toMatchObject({ devices: { [RES]: ['0000:af:07.0'] } });
  await expect(gone.devicesFor({ namespace: 'telco', name: 'nouid' }, [RES])).resolves.toEqual({ devices: {}, problem: expect.stringMatching(/UNAVAILABLE.*; the checkpoint is matched by pod UID and CNI_ARGS has no K8S_POD_UID/) });
  gone.close();
});

test('checkpoint parsing: both DeviceIDs forms, other pods and junk ignored', () => {
  const raw = {
    Data: {
      PodDeviceEntries: [
        { PodUID: 'a', ResourceName: RES, DeviceIDs: { '0': ['d2', 'd1'] } },
        { PodUID: 'a', ResourceName: RES, DeviceIDs: ['d3', 'd1'] },
        { PodUID: 'b', ResourceName: RES, DeviceIDs: ['x'] },
        { PodUID: 'a', ResourceName: 7, DeviceIDs: ['y'] },
        'junk',
      ],
    },
  };
  expect(checkpointDevices(raw, 'a')).toEqual({ [RES]: ['d1', 'd2', 'd3'] });
  expect(checkpointDevices(null, 'a')).toEqual({});
  expect(checkpointDevices({ Data: { PodDeviceEntries: 'no' } }, 'a')).toEqual({});
});
