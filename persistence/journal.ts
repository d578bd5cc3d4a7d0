// Re-export of the storage contracts (they live in protocol/ so that shards/ can depend on
// them without depending on persistence/).
export type { ChainHead, JournalSink, Snapshot, SnapshotStore } from '../protocol/storage.js';
