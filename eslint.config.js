// Lint configuration: typescript-eslint's recommended rules over the sources, tests and benchmarks.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly' } },
    rules: {
      'no-control-regex': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['static/**/*.js'],
    languageOptions: { globals: { document: 'readonly', navigator: 'readonly', setTimeout: 'readonly', EventSource: 'readonly', location: 'readonly', localStorage: 'readonly', fetch: 'readonly', Blob: 'readonly', window: 'readonly' } },
  },
);
