/*
 * idx.h - reading IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or not, into
 * memory: a big-endian header (magic 0x0000TTNN: type TT, NN dims, then NN uint32 sizes)
 * followed by the row-major data.
 *
 * Not here: element types other than unsigned bytes (0x08), which is all the datasets we read
 * use; where the files live (the workload says).
 */
#ifndef TP_WORKLOADS_IDX_H
#define TP_WORKLOADS_IDX_H

#include <stddef.h>
#include <stdint.h>

#define TP_IDX_MAX_DIMS 4

typedef struct tp_idx {
    uint8_t *data; /* (dims[0], ..., dims[ndim-1]) bytes, malloc'd */
    uint32_t ndim;
    uint32_t dims[TP_IDX_MAX_DIMS];
    uint64_t numel;
} tp_idx;

/* Read an unsigned-byte IDX file with `ndim` dims (0: any). Errors: TP_ENOENT when the file
 * cannot be opened (message "path: strerror"), TP_EDATA for a bad header, a wrong number of
 * dims or a truncated file, TP_ENOMEM. On error *out is zeroed. */
int tp_idx_read_u8(const char *path, uint32_t ndim, tp_idx *out, char *err, size_t errlen);
void tp_idx_free(tp_idx *x); /* zeroes it; a zeroed tp_idx is a no-op */

#endif /* TP_WORKLOADS_IDX_H */
