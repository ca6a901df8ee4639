/*
 * test_nn_idx.c - the IDX reader of workloads/common/idx.c on fixtures written at run time
 * (gzip'd and plain): good files, wrong dims, bad magic, truncated header and data, corrupt
 * gzip, a missing file.
 *
 * Not here: the real Fashion-MNIST files (test_fmnist_mlp.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <zlib.h>

#include <trainperf/trainperf.h>

#include "workloads/common/idx.h"

#define FIXTURES TP_TEST_BINARY_DIR "/tests/nn_idx_fixtures"

static void path_of(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, FIXTURES "/%s", name);
}

/* Write bytes as a gzip (gz != 0) or plain file. */
static void write_file(const char *name, const unsigned char *b, size_t n, int gz)
{
    char path[512];
    path_of(path, sizeof path, name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, b, (unsigned)n), (int)n);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(b, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
    }
}

/* An IDX image: magic 0x0000080N, dims, data 0, 1, 2, ... */
static size_t make_idx(unsigned char *b, uint32_t magic, const uint32_t *dims, int nd,
                       size_t data_bytes)
{
    size_t k = 0;
    for (int s = 24; s >= 0; s -= 8)
        b[k++] = (unsigned char)(magic >> s);
    for (int d = 0; d < nd; d++)
        for (int s = 24; s >= 0; s -= 8)
            b[k++] = (unsigned char)(dims[d] >> s);
    for (size_t i = 0; i < data_bytes; i++)
        b[k++] = (unsigned char)(i * 7);
    return k;
}

static int setup(void **state)
{
    mkdir(TP_TEST_BINARY_DIR "/tests", 0755);
    if (mkdir(FIXTURES, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static void test_good_files(void **state)
{
    unsigned char b[256];
    uint32_t dims[3] = {2, 3, 4};
    size_t n = make_idx(b, 0x00000803, dims, 3, 24);
    write_file("good3.gz", b, n, 1);
    write_file("good3.idx", b, n, 0);
    for (int plain = 0; plain < 2; plain++) {
        char path[512], err[512];
        path_of(path, sizeof path, plain ? "good3.idx" : "good3.gz");
        tp_idx x;
        assert_int_equal(tp_idx_read_u8(path, 3, &x, err, sizeof err), 0);
        assert_int_equal(x.ndim, 3);
        assert_int_equal(x.dims[0], 2);
        assert_int_equal(x.dims[1], 3);
        assert_int_equal(x.dims[2], 4);
        assert_int_equal(x.numel, 24);
        for (int i = 0; i < 24; i++)
            assert_int_equal(x.data[i], (unsigned char)(i * 7));
        tp_idx_free(&x);
        assert_null(x.data);
        tp_idx_free(&x); /* zeroed: no-op */
    }
    /* ndim 0 accepts any. */
    char path[512], err[512];
    path_of(path, sizeof path, "good3.gz");
    tp_idx x;
    assert_int_equal(tp_idx_read_u8(path, 0, &x, err, sizeof err), 0);
    tp_idx_free(&x);
}

static void expect_error(const char *name, uint32_t ndim, int code, const char *needle)
{
    char path[512], err[512];
    path_of(path, sizeof path, name);
    tp_idx x;
    memset(&x, 0x5a, sizeof x);
    int rc = tp_idx_read_u8(path, ndim, &x, err, sizeof err);
    print_message("%s: %s\n", name, err);
    assert_int_equal(rc, code);
    assert_null(x.data);
    assert_int_equal(x.numel, 0);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, needle));
}

static void test_bad_files(void **state)
{
    unsigned char b[256];
    uint32_t dims[3] = {2, 3, 4};
    size_t n = make_idx(b, 0x00000803, dims, 3, 24);
    write_file("good3b.gz", b, n, 1);
    expect_error("good3b.gz", 1, TP_EDATA, "3 dims, expected 1");

    n = make_idx(b, 0x00000d03, dims, 3, 24 * 4); /* float data */
    write_file("float.gz", b, n, 1);
    expect_error("float.gz", 3, TP_EDATA, "magic");

    n = make_idx(b, 0x00000803, dims, 3, 23); /* one byte short */
    write_file("short.gz", b, n, 1);
    expect_error("short.gz", 3, TP_EDATA, "truncated");

    write_file("tiny.gz", b, 2, 1);
    expect_error("tiny.gz", 3, TP_EDATA, "cannot read the IDX header (end of file)");

    n = make_idx(b, 0x00000803, dims, 3, 0);
    write_file("nodims.gz", b, 4 + 4, 1); /* header cut inside the dims */
    expect_error("nodims.gz", 3, TP_EDATA, "truncated IDX header");

    /* A gzip header followed by garbage. */
    n = make_idx(b, 0x00000803, dims, 3, 24);
    write_file("corrupt.gz", b, n, 1);
    char path[512];
    path_of(path, sizeof path, "corrupt.gz");
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 12, SEEK_SET);
    unsigned char junk[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
    char err[512];
    tp_idx x;
    int rc = tp_idx_read_u8(path, 3, &x, err, sizeof err);
    print_message("corrupt.gz: %s\n", err);
    assert_int_equal(rc, TP_EDATA);
    assert_null(x.data);
    assert_null(strstr(err, "end of file")); /* zlib's reason, not a plain short file */

    expect_error("does-not-exist.gz", 3, TP_ENOENT, "No such file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_files),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
