/**
 * Prints Ferry's search attributes, one `NAME=Type` a line (the types `temporal operator
 * search-attribute create --type` takes), from src/workflows/search-attributes.ts, the single source of
 * truth. Used by hack/temporal/cluster.sh to register them on a production Temporal server.
 *
 *   node --import tsx hack/temporal/search-attributes.ts
 */
import { searchAttributeCliArgs } from '../../src/workflows/search-attributes';

process.stdout.write(searchAttributeCliArgs().map((a) => `${a}\n`).join(''));
