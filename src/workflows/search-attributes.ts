/**
 * Ferry's custom Temporal search attributes: the single source of truth for their names and types.
 *
 * Workflow-safe (imports only @temporalio/common), so workflows can upsert them with
 * `upsertSearchAttributes`/typed pairs, the client can build visibility queries, and the embedded dev
 * server (./devserver.ts) registers exactly these at start.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * The search attributes every Ferry workflow may set:
 * - `FerryPhase` (Keyword): current phase of the migration (e.g. "stage", "cutover", "rollback").
 * - `FerryNamespaces` (KeywordList): source namespaces the migration moves.
 * - `FerryFailedPVCs` (Int): number of PVCs whose transfer failed so far.
 * - `FerryMigration` (Keyword): the migration id, on the migration workflow (set by the client at
 *   start) and on every namespace and PVC sync workflow of it (set by their parent at start), so that
 *   `FerryMigration="ID"` in the Temporal UI lists a migration's whole tree.
 */
export const SEARCH_ATTRIBUTES = {
  FerryPhase: defineSearchAttributeKey('FerryPhase', SearchAttributeType.KEYWORD),
  FerryNamespaces: defineSearchAttributeKey('FerryNamespaces', SearchAttributeType.KEYWORD_LIST),
  FerryFailedPVCs: defineSearchAttributeKey('FerryFailedPVCs', SearchAttributeType.INT),
  FerryMigration: defineSearchAttributeKey('FerryMigration', SearchAttributeType.KEYWORD),
} as const satisfies Record<string, { name: string; type: SearchAttributeType }>;

/** Name of one of Ferry's search attributes. */
export type FerrySearchAttributeName = keyof typeof SEARCH_ATTRIBUTES;

/** The type names `temporal server start-dev --search-attribute NAME=TYPE` expects, by SDK type. */
export const CLI_SEARCH_ATTRIBUTE_TYPES: Record<SearchAttributeType, string> = {
  TEXT: 'Text',
  KEYWORD: 'Keyword',
  INT: 'Int',
  DOUBLE: 'Double',
  BOOL: 'Bool',
  DATETIME: 'Datetime',
  KEYWORD_LIST: 'KeywordList',
};

/**
 * Values of the API's `temporal.api.enums.v1.IndexedValueType` enum, by SDK type (as returned by
 * OperatorService.ListSearchAttributes and expected by AddSearchAttributes).
 */
export const INDEXED_VALUE_TYPES: Record<SearchAttributeType, number> = {
  TEXT: 1,
  KEYWORD: 2,
  INT: 3,
  DOUBLE: 4,
  BOOL: 5,
  DATETIME: 6,
  KEYWORD_LIST: 7,
};

/** `NAME=Type` arguments for `temporal server start-dev --search-attribute`, one per attribute. */
export function searchAttributeCliArgs(): string[] {
  return Object.values(SEARCH_ATTRIBUTES).map((k) => `${k.name}=${CLI_SEARCH_ATTRIBUTE_TYPES[k.type]}`);
}
