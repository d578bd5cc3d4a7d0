#!/bin/sh
# Creates every topic listed in the topics file, idempotently (--if-not-exists), capping
# replication to the brokers that exist. Never deletes or alters an existing topic: partition
# counts and configs of a live topic change only by a deliberate operator command.
set -eu

BOOTSTRAP="${KAFKA_BOOTSTRAP:?set KAFKA_BOOTSTRAP to host:port}"
BROKERS="${KAFKA_BROKER_COUNT:-3}"
TOPICS_FILE="${TOPICS_FILE:-/etc/ledger/kafka/topics}"
KAFKA_TOPICS="${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}"

min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }

grep -v '^[[:space:]]*#' "$TOPICS_FILE" | grep -v '^[[:space:]]*$' |
while read -r name partitions rf configs; do
  rf=$(min "$rf" "$BROKERS")
  set -- --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$name" \
    --partitions "$partitions" --replication-factor "$rf"
  old_ifs=$IFS
  IFS=,
  for kv in ${configs:-}; do
    case "$kv" in
      min.insync.replicas=*) kv="min.insync.replicas=$(min "${kv#*=}" "$rf")" ;;
    esac
    set -- "$@" --config "$kv"
  done
  IFS=$old_ifs
  echo "create-topics: $name partitions=$partitions replication-factor=$rf"
  "$KAFKA_TOPICS" "$@"
done
