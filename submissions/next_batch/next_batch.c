/*
 * next_batch.c - the default data selection, id "next_batch": each step takes the next
 * batch->capacity indices of the trial's infinite, seeded, pre-shuffled stream
 * (host->next_indices), unweighted. This is AlgoPerf's default `data_selection`: the next
 * batch of the input queue.
 *
 * Not here: any reweighting, skipping or reordering. No state, no hyperparameters.
 */
#include <stdio.h>

#include <trainperf/trainperf.h>

static int next_batch_select(void *state, const tp_host *host, tp_ctx *ctx, tp_batch *batch,
                             tp_error *err)
{
    int rc;

    if (batch == NULL || batch->idx == NULL || batch->capacity == 0) {
        if (err != NULL)
            snprintf(err->message, sizeof err->message,
                     "next_batch: select_batch needs a batch with capacity > 0 and an idx buffer");
        return TP_EINVAL;
    }
    rc = host->next_indices(ctx, batch->capacity, batch->idx);
    if (rc != TP_OK) {
        if (err != NULL)
            snprintf(err->message, sizeof err->message,
                     "next_batch: host->next_indices(%u) failed: %s", (unsigned)batch->capacity,
                     tp_strerror(rc));
        return rc;
    }
    batch->size = batch->capacity;
    batch->weights = NULL;
    return TP_OK;
}

static const tp_plugin_desc next_batch_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "next_batch",
    .kind = TP_PLUGIN_DATA_SELECTION,
    .description = "the next batch of the seeded pre-shuffled stream, unweighted (the default)",
    .hparams = NULL,
    .num_hparams = 0,
    .select_batch = next_batch_select,
};

TP_PLUGIN_ENTRY(i)
{
    return i == 0 ? &next_batch_desc : NULL;
}
