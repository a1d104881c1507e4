// Unit tests run anywhere; integration tests (test/integration) need root, netns and the reference plugins.
// Both run serially-ish: integration suites touch the kernel and share 2 cores.
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022' }, module: { type: 'commonjs' } }] },
  testMatch: ['**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/bin/'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  testTimeout: 60000,
};
