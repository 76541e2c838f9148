// ESLint 9 flat config: typescript-eslint with type information over the TypeScript of
// src/, test/ and bench/ (what tsconfig.json compiles). `npm run lint`; formatting is
// Prettier's (`npm run format:check`), so no stylistic rule here but the line length.
import { defineConfig } from 'eslint/config'
import js from '@eslint/js'
import tseslint from 'typescript-eslint'
import stylistic from '@stylistic/eslint-plugin'

export default defineConfig(
  {
    // Only the TypeScript is linted: scripts/*.mjs, packages/ and apps/ are plain JS outside
    // the type-checked project; build/ and dist/ are output.
    ignores: ['build/', 'dist/', 'node_modules/', '.bench-tmp/', 'scratch/', '**/*.js', '**/*.mjs', '**/*.cjs']
  },
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname
      }
    },
    plugins: { '@stylistic': stylistic },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Kept from the type-checked set because they catch real bugs: no-floating-promises,
      // no-misused-promises, await-thenable, no-unsafe-* (in src/), unbound-method (in src/),
      // no-base-to-string, restrict-template-expressions, only-throw-error, ...

      // node:test's test()/describe() return promises that the runner itself awaits; Node's
      // docs call top-level tests without await. Every other promise must be handled.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            {
              from: 'package',
              package: 'node:test',
              name: ['test', 'describe', 'suite', 'it', 'before', 'after', 'beforeEach', 'afterEach']
            }
          ]
        }
      ],

      // The code swallows errors on purpose in best-effort cleanup (`try { p.kill() } catch {}`:
      // the process may be gone already). Other empty blocks are still reported.
      'no-empty': ['error', { allowEmptyCatch: true }],

      // Off: it finds no bugs, and here it is wrong where an assertion adds optional members
      // (`x as NodeJS.ErrnoException | undefined`, `as (ReadableStream & { destroy?: … })`): its
      // autofix removed those and tsc then failed (src/allocator/runtime/process.ts, docker.ts).
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',

      // Methods that implement an async interface (a runtime's close(), listOwn(), ...) are
      // `async` without an await so that a throw becomes a rejection like everywhere else.
      '@typescript-eslint/require-await': 'off',

      // tsc already reports unused locals and parameters (noUnusedLocals/Parameters); this
      // only has to agree with it that a leading underscore marks one as unused on purpose.
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_'
        }
      ],

      // Lines up to 120 characters. Prettier wraps code at 120 but never strings, template
      // literals or comments: long strings, URLs and regular expressions may run on, comments
      // may not (wrap them by hand).
      '@stylistic/max-len': [
        'error',
        {
          code: 120,
          tabWidth: 2,
          ignoreStrings: true,
          ignoreTemplateLiterals: true,
          ignoreUrls: true,
          ignoreRegExpLiterals: true,
          ignoreComments: false
        }
      ]
    }
  },
  {
    // Tests and benchmarks read JSON they wrote themselves (docker inspect, config files,
    // results) and poke into it without declaring its whole type, and they save and restore
    // prototype methods (Socket.prototype.write) to count calls: deliberate there, a bug in src/.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/unbound-method': 'off'
    }
  }
)
