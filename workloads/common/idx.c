/*
 * idx.c - the IDX reader (tp_idx_*): zlib's gzopen / gzread, which read gzip and plain files
 * alike, with a large buffer so a 26 MB archive decompresses in one pass.
 *
 * Not here: element types other than unsigned bytes, writing IDX files.
 */
#include "workloads/common/idx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include <trainperf/trainperf.h>

#define IDX_TYPE_U8 0x08

/* Read exactly n bytes; 0 on success. */
static int read_all(gzFile f, void *buf, uint64_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(f, p, chunk);
        if (got <= 0)
            return -1;
        p += got;
        n -= (unsigned)got;
    }
    return 0;
}

/* The reason a read came up short: zlib's message for corrupt data (without the path zlib puts
 * in front), else the end of file. */
static const char *short_reason(gzFile f, const char *path)
{
    int zerr = Z_OK;
    const char *msg = gzerror(f, &zerr);
    if (zerr == Z_OK || zerr == Z_BUF_ERROR || !msg || !*msg)
        return "end of file";
    size_t n = strlen(path);
    return !strncmp(msg, path, n) && !strncmp(msg + n, ": ", 2) ? msg + n + 2 : msg;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

int tp_idx_read_u8(const char *path, uint32_t ndim, tp_idx *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, errno ? strerror(errno) : "cannot open");
        return errno == ENOMEM ? TP_ENOMEM : TP_ENOENT;
    }
    gzbuffer(f, 1u << 17);
    int rc = TP_EDATA;
    unsigned char head[4 + 4 * TP_IDX_MAX_DIMS];
    if (read_all(f, head, 4)) {
        snprintf(err, errlen, "%s: cannot read the IDX header (%s)", path, short_reason(f, path));
        goto error;
    }
    uint32_t magic = be32(head);
    uint32_t type = (magic >> 8) & 0xff, nd = magic & 0xff;
    if ((magic >> 16) != 0 || type != IDX_TYPE_U8 || nd < 1 || nd > TP_IDX_MAX_DIMS) {
        snprintf(err, errlen,
                 "%s: bad IDX magic 0x%08x (expected 0x0000080N: unsigned bytes, 1 to %d dims)",
                 path, magic, TP_IDX_MAX_DIMS);
        goto error;
    }
    if (ndim && nd != ndim) {
        snprintf(err, errlen, "%s: %u dims, expected %u", path, nd, ndim);
        goto error;
    }
    if (read_all(f, head + 4, 4 * nd)) {
        snprintf(err, errlen, "%s: truncated IDX header (%s)", path, short_reason(f, path));
        goto error;
    }
    out->ndim = nd;
    out->numel = 1;
    for (uint32_t i = 0; i < nd; i++) {
        out->dims[i] = be32(head + 4 + 4 * i);
        out->numel *= out->dims[i];
        if (out->numel > ((uint64_t)1 << 36)) {
            snprintf(err, errlen, "%s: IDX dims too large", path);
            goto error;
        }
    }
    out->data = malloc(out->numel ? out->numel : 1);
    if (!out->data) {
        snprintf(err, errlen, "%s: out of memory for %llu bytes", path,
                 (unsigned long long)out->numel);
        rc = TP_ENOMEM;
        goto error;
    }
    if (read_all(f, out->data, out->numel)) {
        snprintf(err, errlen, "%s: truncated or corrupt data (%s): expected %llu bytes", path,
                 short_reason(f, path), (unsigned long long)out->numel);
        goto error;
    }
    gzclose(f);
    return 0;

error:
    gzclose(f);
    tp_idx_free(out);
    return rc;
}

void tp_idx_free(tp_idx *x)
{
    if (!x)
        return;
    free(x->data);
    memset(x, 0, sizeof *x);
}
