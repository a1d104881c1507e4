import { PlexusError } from '../core/errors';
import { ERRNO, errnoName, hasErrno, invalidArgument, isKernelError, KernelError } from './errno';

describe('KernelError', () => {
  test.each([
    [19, 'ENODEV', 'No such device'],
    [17, 'EEXIST', 'File exists'],
    [2, 'ENOENT', 'No such file or directory'],
    [3, 'ESRCH', 'No such process'],
    [99, 'EADDRNOTAVAIL', 'Cannot assign requested address'],
    [4095, 'E4095', 'errno 4095'],
  ])('errno %d is %s', (errno, name, text) => {
    const err = new KernelError('do the thing', errno);
    expect(err).toBeInstanceOf(PlexusError);
    expect(err).toMatchObject({ errno, errnoName: name, kind: 'KernelFailure', code: 'PLX_KERNEL_FAILURE', cniCode: 111 });
    expect(err.message).toBe(`failed to do the thing: ${name} (${text})`);
    expect(errnoName(errno)).toBe(name);
  });

  test('carries the kernel extended ack in message and details', () => {
    const err = new KernelError('add route', ERRNO.ENETUNREACH, { extack: 'Nexthop has invalid gateway' });
    expect(err.extack).toBe('Nexthop has invalid gateway');
    expect(err.message).toBe('failed to add route: ENETUNREACH (Network is unreachable): Nexthop has invalid gateway');
    expect(err.toCni('1.1.0')).toEqual({
      cniVersion: '1.1.0',
      code: 111,
      msg: err.message,
      details: 'ENETUNREACH: Nexthop has invalid gateway',
    });
  });

  test('is / hasErrno / isKernelError branch on the errno, not the text', () => {
    const err = new KernelError('delete link', ERRNO.ENODEV);
    expect(err.is('ENODEV')).toBe(true);
    expect(err.is('ENOENT', 'ENODEV')).toBe(true);
    expect(err.is('EEXIST')).toBe(false);
    expect(hasErrno(err, 'ENODEV')).toBe(true);
    expect(hasErrno(new Error('ENODEV'), 'ENODEV')).toBe(false);
    expect(isKernelError(err)).toBe(true);
    expect(invalidArgument('parse x', 'bad')).toMatchObject({ errnoName: 'EINVAL', extack: 'bad' });
  });
});
