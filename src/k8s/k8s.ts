/**
 * The runtime module of @kubernetes/client-node, loaded through Node's own `require`.
 *
 * @kubernetes/client-node 1.x is published as ES modules only, while Ferry compiles to CommonJS.
 * Node ≥ 20.19 loads ES modules with `require()` natively (no top-level await in that package), but
 * Jest's module registry cannot, so a plain `import { KubeConfig } from '@kubernetes/client-node'`
 * fails under Jest with "Unexpected token 'export'". `createRequire` hands the request to Node itself,
 * which works the same in the worker, tsx and Jest (whose own `node:module` createRequire goes
 * back to its registry, hence process.getBuiltinModule). Import TYPES from '@kubernetes/client-node'
 * directly (`import type`), VALUES (classes, constants) from here.
 */
import type * as K8s from '@kubernetes/client-node';

/** Node's own `module` builtin (process.getBuiltinModule, Node ≥ 20.16: Jest replaces the importable one). */
const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');

/** The @kubernetes/client-node module (classes and constants). */
export const k8s: typeof K8s = nodeModule.createRequire(__filename)('@kubernetes/client-node') as typeof K8s;
