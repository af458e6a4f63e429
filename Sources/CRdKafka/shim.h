#ifndef VIGIL_CRDKAFKA_SHIM_H
#define VIGIL_CRDKAFKA_SHIM_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/*
 * rd_kafka_producev() is variadic, which Swift cannot call. This one fixed-signature
 * wrapper is the only C logic in the shim. The payload and key are copied
 * (RD_KAFKA_MSG_F_COPY); on success librdkafka owns `headers`, on failure the caller
 * still does. `partition` RD_KAFKA_PARTITION_UA lets the partitioner hash the key.
 */
static inline rd_kafka_resp_err_t vigil_rd_kafka_produce(
    rd_kafka_t *rk, const char *topic, int32_t partition,
    const void *key, size_t key_size,
    const void *payload, size_t payload_size,
    rd_kafka_headers_t *headers, void *opaque)
{
    if (headers != NULL) {
        return rd_kafka_producev(rk,
            RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, key_size),
            RD_KAFKA_V_VALUE((void *)payload, payload_size),
            RD_KAFKA_V_HEADERS(headers),
            RD_KAFKA_V_OPAQUE(opaque),
            RD_KAFKA_V_END);
    }
    return rd_kafka_producev(rk,
        RD_KAFKA_V_TOPIC(topic),
        RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key, key_size),
        RD_KAFKA_V_VALUE((void *)payload, payload_size),
        RD_KAFKA_V_OPAQUE(opaque),
        RD_KAFKA_V_END);
}

#endif
