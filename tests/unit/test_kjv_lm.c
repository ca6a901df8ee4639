/*
 * test_kjv_lm.c - the kjv_lm workload: the normalisation of `bible` output and the split by
 * book on small in-test texts (through the same functions prepare and create use), and the model
 * on a tiny generated text in a temporary data.dir: the tensor table, gradients of the whole
 * model against central finite differences (pre-LN with dropout and label smoothing, post-LN,
 * attention temperature, GLU with tanh), bit-identical determinism, eval mode, per-example
 * losses, weights and chunked batches, the evaluation subset, a few hundred Adam steps that
 * learn, the three variants of kjv_lm.cfg, option errors with file:line, a missing or corrupt
 * cache and a missing `bible` program.
 *
 * The real-text test (prepare with Debian's bible-kjv into a temporary directory, then the
 * sizes of the real splits) is skipped with a message when /usr/bin/bible is not installed.
 *
 * Not here: the engine's op-level gradient tests (test_nn_seq.c), trials (the integration
 * tests).
 */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/nn/nn.h"
#include "core/nn/workload.h"
#include "tp_test.h"
#include "tp_wltest.h"
#include "workloads/kjv_lm/kjv_lm.h"

#define CFG   "kjv_test.cfg"
#define WL    "kjv_lm"
#define BIBLE "/usr/bin/bible"

static char tmp_root[512]; /* the test's temporary directory */
static char tiny_dir[600]; /* a data.dir holding the tiny generated text */

/* ---------------------------------------------------------------------------------------- */
/* Helpers */

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* The tiny text: 66 books of 6 verses of words drawn with a fixed seed. */
static char *tiny_text(size_t *len)
{
    static const char *const words[] = {"and",    "the",  "LORD",  "said", "unto",   "Moses",
                                        "of",     "thee", "shall", "be",   "in",     "land",
                                        "Israel", "him",  "them",  "God",  "behold", "saith"};
    static const char punct[] = ",;:";
    size_t cap = 1 << 20, n = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    tp_rng r;
    tp_rng_seed(&r, 2024);
    for (int b = 0; b < TP_KJV_BOOKS; b++) {
        if (b)
            t[n++] = '\n';
        for (int v = 0; v < 6; v++) {
            int nw = 5 + (int)tp_rng_below(&r, 8);
            for (int k = 0; k < nw; k++) {
                const char *w = words[tp_rng_below(&r, sizeof words / sizeof words[0])];
                n += (size_t)snprintf(t + n, cap - n, "%s%s", k ? " " : "", w);
                if (k + 1 < nw && tp_rng_below(&r, 5) == 0)
                    t[n++] = punct[tp_rng_below(&r, 3)];
            }
            t[n++] = tp_rng_below(&r, 4) ? '.' : '?';
            t[n++] = '\n';
        }
    }
    *len = n;
    return t;
}

static int setup_all(void **state)
{
    if (tp_test_tmpdir(tmp_root, sizeof tmp_root, "kjv_lm") != 0)
        return -1;
    snprintf(tiny_dir, sizeof tiny_dir, "%s/tiny", tmp_root);
    if (mkdir(tiny_dir, 0777) != 0)
        return -1;
    size_t len;
    char *t = tiny_text(&len);
    char path[700];
    snprintf(path, sizeof path, "%s/kjv-v1.txt", tiny_dir);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(t, 1, len, f) == len;
    if (f)
        ok = fclose(f) == 0 && ok;
    free(t);
    return ok ? 0 : -1;
}

static int teardown_all(void **state)
{
    return tp_test_tmpdir_remove(tmp_root);
}

static int prepare(const tp_wl_option *opts, size_t n, char *err, size_t errlen)
{
    const tp_workload_desc *d = tp_workload_find("kjv_lm");
    assert_non_null(d);
    tp_wl_params p = {CFG, opts, n};
    return tp_workload_prepare(d, &p, err, errlen);
}

/* The tiny model on the tiny text, with up to 4 more options. */
static tp_workload *create_tiny(const tp_wl_option *extra, size_t n_extra)
{
    tp_wl_option o[12] = {
        {"data.dir", tiny_dir, 0, 1},       {"data.context", NULL, 8, 2},
        {"data.eval_windows", NULL, 20, 3}, {"model.width", NULL, 16, 4},
        {"model.depth", NULL, 2, 5},        {"model.heads", NULL, 2, 6},
        {"model.mlp_dim", NULL, 24, 7},
    };
    size_t n = 7;
    for (size_t i = 0; i < n_extra; i++)
        o[n++] = extra[i];
    return tp_wltest_create_ok(WL, CFG, o, n);
}

/* ---------------------------------------------------------------------------------------- */
/* Text */

static void test_registry(void **state)
{
    const tp_workload_desc *d = tp_workload_find("kjv_lm");
    assert_non_null(d);
    assert_string_equal(d->name, "kjv_lm");
    assert_string_equal(d->metric, "loss");
    assert_int_equal(d->maximize, 0);
    assert_non_null(d->prepare);
    assert_non_null(d->description);
}

/* `bible` output in miniature: two chapters of one book, a wrapped verse, a three-digit verse
 * number, stray spaces, a book name with a digit and one with spaces. */
static const char raw_small[] = "\n"
                                "Genesis 1\n"
                                "\n"
                                "  1 In the beginning God created the heaven and the earth.\n"
                                "  2 And the earth was without form, and void; and darkness was\n"
                                "upon the face of   the deep.  \n"
                                "\n"
                                "Genesis 2\n"
                                "\n"
                                "  1 Thus the heavens and the earth were finished.\n"
                                "\n"
                                "1 Samuel 3\n"
                                "\n"
                                "  176 And Samuel grew, and the LORD was with him,\n"
                                "and did let none of his words fall to the ground.\n"
                                "  177 (Hear, O Israel!)\n"
                                "\n"
                                "Song of Solomon 1\n"
                                "\n"
                                "  1 The song of songs, which is Solomon's.\n";

static const char normalized_small[] =
    "In the beginning God created the heaven and the earth.\n"
    "And the earth was without form, and void; and darkness was upon the face of the deep.\n"
    "Thus the heavens and the earth were finished.\n"
    "\n"
    "And Samuel grew, and the LORD was with him, and did let none of his words fall to the "
    "ground.\n"
    "(Hear, O Israel!)\n"
    "\n"
    "The song of songs, which is Solomon's.\n";

static void test_normalize(void **state)
{
    char err[512], *out = NULL;
    size_t len;
    uint32_t books;
    uint64_t verses;
    assert_int_equal(tp_kjv_normalize(raw_small, sizeof raw_small - 1, &out, &len, &books, &verses,
                                      err, sizeof err),
                     0);
    print_message("normalised: %zu bytes, %u books, %llu verses\n", len, books,
                  (unsigned long long)verses);
    assert_int_equal(books, 3);
    assert_int_equal(verses, 6);
    assert_int_equal(len, sizeof normalized_small - 1);
    assert_memory_equal(out, normalized_small, len);
    free(out);

    /* No trailing newline at the end of the input: the same text. */
    assert_int_equal(tp_kjv_normalize(raw_small, sizeof raw_small - 2, &out, &len, &books, &verses,
                                      err, sizeof err),
                     0);
    assert_int_equal(len, sizeof normalized_small - 1);
    assert_memory_equal(out, normalized_small, len);
    free(out);
}

static void expect_normalize_error(const char *raw, const char *needle)
{
    char err[512], *out = (char *)1;
    size_t len;
    uint32_t books;
    uint64_t verses;
    int rc = tp_kjv_normalize(raw, strlen(raw), &out, &len, &books, &verses, err, sizeof err);
    print_message("error: %s\n", err);
    assert_int_equal(rc, TP_EDATA);
    assert_null(out);
    assert_non_null(strstr(err, needle));
}

static void test_normalize_errors(void **state)
{
    expect_normalize_error("", "no verses");
    expect_normalize_error("\nGenesis 1\n\n", "no verses");
    expect_normalize_error("  1 In the beginning\n", "line 1: a verse before any heading");
    expect_normalize_error("\nGenesis\n\n  1 In the beginning\n", "line 2: \"Genesis\" is neither");
    expect_normalize_error("\nGenesis 1\n\n   indented text\n", "line 4: \"   indented text\"");
    expect_normalize_error("\nGenesis 1\n\n  1\n  2 text\n", "line 5: a verse with no text");
    expect_normalize_error("bible: Cannot find the concordance\n", "line 1:");
}

/* A cache text of n books; book b's lines are "b<b> ...". */
static char *books_text(int n, size_t *len)
{
    size_t cap = 1 << 16, k = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    for (int b = 0; b < n; b++) {
        if (b)
            t[k++] = '\n';
        k += (size_t)snprintf(t + k, cap - k, "b%d first.\nb%d second!\n", b, b);
    }
    *len = k;
    return t;
}

static void test_book_split(void **state)
{
    /* The books of each split: Ruth, Ecclesiastes, Joel, Galatians, 1 John; Esther, Song of
     * Solomon, Amos, Ephesians. */
    static const uint32_t val[] = {7, 20, 28, 47, 61}, tst[] = {16, 21, 29, 48};
    int count[3] = {0, 0, 0};
    for (uint32_t b = 0; b < TP_KJV_BOOKS; b++)
        count[tp_kjv_book_split(b)]++;
    assert_int_equal(count[TP_SPLIT_TRAIN], 57);
    assert_int_equal(count[TP_SPLIT_VALIDATION], 5);
    assert_int_equal(count[TP_SPLIT_TEST], 4);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tp_kjv_book_split(val[i]), TP_SPLIT_VALIDATION);
    for (int i = 0; i < 4; i++)
        assert_int_equal(tp_kjv_book_split(tst[i]), TP_SPLIT_TEST);

    size_t len;
    char *t = books_text(TP_KJV_BOOKS, &len);
    tp_kjv_corpus c;
    char err[512];
    assert_int_equal(tp_kjv_corpus_parse(t, len, &c, err, sizeof err), 0);
    /* Vocabulary: the distinct bytes, ascending. */
    static const char expect_vocab[] = "\n !.0123456789bcdefinorst";
    assert_int_equal(c.vocab_size, sizeof expect_vocab - 1);
    assert_memory_equal(c.vocab, expect_vocab, c.vocab_size);
    assert_int_equal(c.books[0], 57);
    assert_int_equal(c.books[1], 5);
    assert_int_equal(c.books[2], 4);
    /* Decode each split: its books in order, the empty separator lines left out. */
    for (int s = 0; s < 3; s++) {
        char expect[8192], got[8192];
        size_t k = 0;
        for (int b = 0; b < TP_KJV_BOOKS; b++)
            if ((int)tp_kjv_book_split((uint32_t)b) == s)
                k += (size_t)snprintf(expect + k, sizeof expect - k, "b%d first.\nb%d second!\n", b,
                                      b);
        assert_int_equal(c.len[s], k);
        for (uint64_t i = 0; i < c.len[s]; i++) {
            assert_true(c.ids[s][i] < c.vocab_size);
            got[i] = (char)c.vocab[c.ids[s][i]];
        }
        assert_memory_equal(got, expect, k);
        if (s == TP_SPLIT_VALIDATION)
            print_message("validation split: %.*s...\n", 40, got);
    }
    tp_kjv_corpus_free(&c);
    tp_kjv_corpus_free(&c); /* a zeroed corpus frees to nothing */
    free(t);
}

static void expect_parse_error(const char *t, size_t len, const char *needle)
{
    tp_kjv_corpus c;
    char err[512];
    int rc = tp_kjv_corpus_parse(t, len, &c, err, sizeof err);
    print_message("parse error: %s\n", err);
    assert_int_equal(rc, TP_EDATA);
    assert_non_null(strstr(err, needle));
    assert_null(c.ids[0]);
}

static void test_corpus_errors(void **state)
{
    size_t len;
    char *t = books_text(TP_KJV_BOOKS - 1, &len);
    expect_parse_error(t, len, "65 books");
    free(t);
    t = books_text(TP_KJV_BOOKS, &len);
    expect_parse_error(t, len - 1, "does not end");
    expect_parse_error(t, 0, "empty");
    /* Two empty lines between books 0 and 1. */
    char *two = malloc(len + 2);
    const char *sep = strstr(t, "\n\n");
    size_t at = (size_t)(sep - t) + 1;
    memcpy(two, t, at);
    two[at] = '\n';
    memcpy(two + at + 1, t + at, len - at);
    expect_parse_error(two, len + 1, "line 4: an empty line");
    /* An empty first line. */
    two[0] = '\n';
    memcpy(two + 1, t, len);
    expect_parse_error(two, len + 1, "line 1: an empty line");
    free(two);
    free(t);
}

/* ---------------------------------------------------------------------------------------- */
/* The model on the tiny text */

static void test_sizes_and_tensors(void **state)
{
    tp_workload *w = create_tiny(NULL, 0);
    assert_string_equal(w->name, "kjv_lm");
    assert_string_equal(w->metric, "loss");
    assert_int_equal(w->maximize, 0);
    assert_int_equal(w->split_size[TP_SPLIT_VALIDATION], 20);
    assert_int_equal(w->split_size[TP_SPLIT_TEST], 20);
    assert_true(w->split_size[TP_SPLIT_TRAIN] > 1000);
    print_message("tiny text: %llu training windows of 9 characters\n",
                  (unsigned long long)w->split_size[TP_SPLIT_TRAIN]);
    /* V from the generated words: "\n ,.:;?" + the letters used. */
    const tp_tensor_info *tok = tp_wltest_tensor(w, "tok_embedding");
    assert_non_null(tok);
    uint32_t V = tok->shape[0];
    const uint64_t D = 16, F = 24, T = 8;
    uint64_t per_block = 4 * D + 4 * D * D + D * F + F + F * D + D;
    assert_int_equal(w->num_params, V * D + T * D + 2 * per_block + 2 * D + D * V + V);
    assert_int_equal(w->num_tensors, 2 + 2 * 12 + 2 + 2);
    static const char *const names[] = {
        "tok_embedding",         "pos_embedding",         "block0.ln1.scale",
        "block0.ln1.bias",       "block0.attn.query",     "block0.attn.key",
        "block0.attn.value",     "block0.attn.out",       "block0.ln2.scale",
        "block0.ln2.bias",       "block0.mlp.fc1.weight", "block0.mlp.fc1.bias",
        "block0.mlp.fc2.weight", "block0.mlp.fc2.bias"};
    static const tp_param_role roles[] = {
        TP_PARAM_ROLE_EMBEDDING, TP_PARAM_ROLE_EMBEDDING, TP_PARAM_ROLE_NORM_SCALE,
        TP_PARAM_ROLE_NORM_BIAS, TP_PARAM_ROLE_WEIGHT,    TP_PARAM_ROLE_WEIGHT,
        TP_PARAM_ROLE_WEIGHT,    TP_PARAM_ROLE_WEIGHT,    TP_PARAM_ROLE_NORM_SCALE,
        TP_PARAM_ROLE_NORM_BIAS, TP_PARAM_ROLE_WEIGHT,    TP_PARAM_ROLE_BIAS,
        TP_PARAM_ROLE_WEIGHT,    TP_PARAM_ROLE_BIAS};
    for (int i = 0; i < 14; i++) {
        assert_string_equal(w->tensors[i].name, names[i]);
        assert_int_equal(w->tensors[i].role, roles[i]);
    }
    assert_int_equal(tp_wltest_tensor(w, "pos_embedding")->shape[0], T);
    assert_int_equal(tp_wltest_tensor(w, "block1.mlp.fc1.weight")->shape[1], F);
    assert_int_equal(tp_wltest_tensor(w, "head.weight")->shape[0], D);
    assert_int_equal(tp_wltest_tensor(w, "head.weight")->shape[1], V);
    assert_non_null(tp_wltest_tensor(w, "ln_f.scale"));
    uint64_t off = 0;
    for (uint32_t i = 0; i < w->num_tensors; i++) {
        assert_int_equal(w->tensors[i].offset, off);
        off += w->tensors[i].numel;
    }
    assert_int_equal(off, w->num_params);

    /* Init: LN scales 1, biases 0, token embedding std 1, Xavier kernels. */
    char err[512];
    float *p = tp_params_alloc(w->num_params);
    assert_int_equal(w->vt->init_params(w, 3, p, err, sizeof err), 0);
    assert_true(p[tp_wltest_tensor(w, "block1.ln2.scale")->offset] == 1.0f);
    assert_true(p[tp_wltest_tensor(w, "block1.ln2.bias")->offset] == 0.0f);
    assert_true(p[tp_wltest_tensor(w, "head.bias")->offset] == 0.0f);
    const tp_tensor_info *q = tp_wltest_tensor(w, "block0.attn.query");
    float limit = sqrtf(6.0f / 32.0f), maxabs = 0.0f;
    for (uint64_t i = 0; i < q->numel; i++)
        maxabs = fmaxf(maxabs, fabsf(p[q->offset + i]));
    assert_true(maxabs <= limit && maxabs > 0.8f * limit);
    double s2 = 0.0;
    for (uint64_t i = 0; i < tok->numel; i++)
        s2 += (double)p[tok->offset + i] * p[tok->offset + i];
    print_message("token embedding std %.3f (1), query |max| %.3f (Xavier limit %.3f)\n",
                  sqrt(s2 / (double)tok->numel), (double)maxabs, (double)limit);
    assert_true(fabs(sqrt(s2 / (double)tok->numel) - 1.0) < 0.25);
    tp_params_free(p);
    w->vt->free(w);
}

static void grad_check(const char *what, const tp_wl_option *extra, size_t n_extra, float smoothing,
                       float drop)
{
    tp_workload *w = create_tiny(extra, n_extra);
    char err[512];
    float *p = tp_params_alloc(w->num_params), *g = tp_params_alloc(w->num_params);
    assert_int_equal(w->vt->init_params(w, 5, p, err, sizeof err), 0);
    /* Scales and shifts away from 1 and 0, so their gradients are not special. */
    tp_rng r;
    tp_rng_seed(&r, 17);
    for (uint32_t t = 0; t < w->num_tensors; t++) {
        const tp_tensor_info *ti = &w->tensors[t];
        if (ti->role != TP_PARAM_ROLE_WEIGHT && ti->role != TP_PARAM_ROLE_EMBEDDING)
            for (uint64_t i = 0; i < ti->numel; i++)
                p[ti->offset + i] += 0.2f * (float)(tp_rng_uniform(&r) - 0.5);
    }
    enum { B = 6 };
    uint32_t idx[B];
    float wts[B], per[B];
    for (uint32_t i = 0; i < B; i++) {
        idx[i] = (uint32_t)((i * 211 + 7) % w->split_size[TP_SPLIT_TRAIN]);
        wts[i] = 0.5f + 0.2f * (float)i;
    }
    tp_loss_opts opts = {sizeof opts, TP_SDK_VERSION, smoothing, drop, 0};
    double loss;
    memset(g, 0xff, w->num_params * sizeof(float)); /* overwritten, not accumulated */
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, wts, B, &opts, 77, g, &loss, per, err, sizeof err), 0);
    assert_true(fabs(loss - tp_wltest_loss_at(w, p, idx, wts, B, &opts, 77, per)) < 1e-6);

    double max_rel = 0.0;
    const double eps = 1e-2;
    int checked = 0;
    /* Coordinates from every tensor; in the token embedding only rows the batch uses have a
     * gradient, so half its draws are rows of the first window's characters. */
    for (uint32_t t = 0; t < w->num_tensors; t++) {
        const tp_tensor_info *ti = &w->tensors[t];
        for (int k = 0; k < 4; k++) {
            uint64_t j = ti->offset + tp_rng_below(&r, ti->numel);
            if (!strcmp(ti->name, "tok_embedding") && k % 2 == 0) {
                uint32_t D = ti->shape[1];
                float *row_g = g + ti->offset;
                /* The row with the largest gradient norm. */
                uint32_t best = 0;
                double bestn = -1.0;
                for (uint32_t v = 0; v < ti->shape[0]; v++) {
                    double nn = 0.0;
                    for (uint32_t d = 0; d < D; d++)
                        nn += fabs(row_g[v * D + d]);
                    if (nn > bestn) {
                        bestn = nn;
                        best = v;
                    }
                }
                j = ti->offset + (uint64_t)best * D + tp_rng_below(&r, D);
            }
            float v = p[j];
            float vp = (float)(v + eps), vm = (float)(v - eps);
            p[j] = vp;
            double lp = tp_wltest_loss_at(w, p, idx, wts, B, &opts, 77, per);
            p[j] = vm;
            double lm = tp_wltest_loss_at(w, p, idx, wts, B, &opts, 77, per);
            p[j] = v;
            double num = (lp - lm) / ((double)vp - (double)vm);
            double a = g[j];
            double rel = fabs(a - num) / fmax(fmax(fabs(a), fabs(num)), 1e-2);
            if (rel > 2e-3)
                print_message("  %s[%llu]: analytic %.7g numeric %.7g\n", ti->name,
                              (unsigned long long)(j - ti->offset), a, num);
            max_rel = fmax(max_rel, rel);
            checked++;
        }
    }
    print_message("%s: %u tensors, %d coordinates, max relative difference %.3g (floor 1e-2, "
                  "tolerance 1e-2)\n",
                  what, w->num_tensors, checked, max_rel);
    assert_true(max_rel < 1e-2);
    tp_params_free(p);
    tp_params_free(g);
    w->vt->free(w);
}

static void test_grad_pre_ln(void **state)
{
    grad_check("pre-LN gelu, smoothing 0.1, dropout 0.2", NULL, 0, 0.1f, 0.2f);
}

static void test_grad_post_ln(void **state)
{
    tp_wl_option o[] = {{"model.norm", "post_ln", 0, 8}, {"model.activation", "silu", 0, 9}};
    grad_check("post-LN silu", o, 2, 0.0f, 0.0f);
}

static void test_grad_attention_temp(void **state)
{
    tp_wl_option o[] = {{"model.attention_temp", NULL, 4.0, 8}};
    grad_check("attention temperature 4, dropout 0.1", o, 1, 0.0f, 0.1f);
}

static void test_grad_glu_tanh(void **state)
{
    tp_wl_option o[] = {{"model.activation", "tanh", 0, 8}, {"model.glu", NULL, 1, 9}};
    grad_check("GLU tanh, smoothing 0.2", o, 2, 0.2f, 0.0f);
}

static void test_determinism_and_eval_mode(void **state)
{
    tp_workload *w = create_tiny(NULL, 0);
    char err[512];
    uint64_t n = w->num_params;
    float *p = tp_params_alloc(n), *g1 = tp_params_alloc(n), *g2 = tp_params_alloc(n);
    assert_int_equal(w->vt->init_params(w, 9, p, err, sizeof err), 0);
    enum { B = 32 };
    uint32_t idx[B];
    float per1[B], per2[B];
    for (int i = 0; i < B; i++)
        idx[i] = (uint32_t)(i * 13 % w->split_size[TP_SPLIT_TRAIN]);
    tp_loss_opts o = {sizeof o, TP_SDK_VERSION, 0.1f, 0.3f, 0};
    double l1, l2;
    memset(g1, 0xff, n * sizeof(float));
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &o, 5, g1, &l1, per1, err, sizeof err), 0);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &o, 5, g2, &l2, per2, err, sizeof err), 0);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, g2, n * sizeof(float));
    assert_memory_equal(per1, per2, sizeof per1);
    for (uint64_t i = 0; i < n; i++)
        assert_true(isfinite(g1[i]));
    /* Same seed for init: same parameters. */
    float *p2 = tp_params_alloc(n);
    assert_int_equal(w->vt->init_params(w, 9, p2, err, sizeof err), 0);
    assert_memory_equal(p, p2, n * sizeof(float));
    assert_int_equal(w->vt->init_params(w, 10, p2, err, sizeof err), 0);
    assert_memory_not_equal(p, p2, n * sizeof(float));
    tp_params_free(p2);
    /* Another dropout seed: another loss. */
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &o, 6, g2, &l2, NULL, err, sizeof err), 0);
    assert_true(l1 != l2);
    /* Eval mode turns dropout off: the same as no dropout, whatever the seed. */
    tp_loss_opts ev = {sizeof ev, TP_SDK_VERSION, 0.1f, 0.3f, TP_LOSS_EVAL_MODE};
    tp_loss_opts nod = {sizeof nod, TP_SDK_VERSION, 0.1f, 0.0f, 0};
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &ev, 5, g1, &l1, NULL, err, sizeof err), 0);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &nod, 8, g2, &l2, NULL, err, sizeof err), 0);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, g2, n * sizeof(float));
    print_message("dropout 0.3: train-mode loss differs by seed; eval-mode loss %.6f equals the "
                  "dropout-free one\n",
                  l1);
    /* Smoothing changes the training loss; NULL opts means none. */
    tp_loss_opts zero = {sizeof zero, TP_SDK_VERSION, 0.0f, 0.0f, 0};
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, NULL, 1, g1, &l1, NULL, err, sizeof err), 0);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &zero, 2, g2, &l2, NULL, err, sizeof err), 0);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &nod, 2, g2, &l2, NULL, err, sizeof err), 0);
    assert_true(l1 != l2);
    /* Errors at call. */
    uint32_t bad[2] = {0, (uint32_t)w->split_size[TP_SPLIT_TRAIN]};
    int rc = w->vt->loss_and_grad(w, p, bad, NULL, 2, NULL, 0, g1, &l1, NULL, err, sizeof err);
    print_message("range: %s\n", err);
    assert_int_equal(rc, TP_ERANGE);
    assert_non_null(strstr(err, "position 1"));
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, 0, NULL, 0, g1, &l1, NULL, err, sizeof err),
        TP_EINVAL);
    tp_loss_opts badopt = {sizeof badopt, TP_SDK_VERSION, 0.0f, 1.0f, 0};
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &badopt, 0, g1, &l1, NULL, err, sizeof err),
        TP_EINVAL);
    tp_eval_result r;
    assert_int_equal(w->vt->evaluate(w, p, (tp_split)7, &r, err, sizeof err), TP_EINVAL);
    assert_int_equal(w->vt->init_params(w, 0, NULL, err, sizeof err), TP_EINVAL);
    tp_params_free(p);
    tp_params_free(g1);
    tp_params_free(g2);
    w->vt->free(w);
}

static void test_weights_chunks_and_eval(void **state)
{
    tp_wl_option all[] = {{"data.eval_windows", NULL, 0, 9}};
    tp_workload *w = create_tiny(all, 1);
    char err[512];
    float *p = tp_params_alloc(w->num_params);
    assert_int_equal(w->vt->init_params(w, 2, p, err, sizeof err), 0);
    /* A batch of 1200, more than one chunk (4096 tokens = 512 windows of 8), indices repeating,
     * halves of 600; evaluate over all windows of the training split (data.eval_windows 0).
     * per[] are the floats of the loss's terms: the weighted mean to relative 1e-6. */
    tp_eval_result ev;
    tp_wltest_check_chunks(w, p, 1200, 600, w->split_size[TP_SPLIT_TRAIN], 0.0, 1e-6, &ev);
    assert_true(ev.loss == ev.metric); /* so the metric, too, is loss_and_grad's loss */

    /* The validation split: all its windows here, 20 spread over it with the tiny default. */
    tp_eval_result v_all, v_sub;
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_VALIDATION, &v_all, err, sizeof err), 0);
    tp_workload *w20 = create_tiny(NULL, 0);
    assert_int_equal(w20->vt->evaluate(w20, p, TP_SPLIT_VALIDATION, &v_sub, err, sizeof err), 0);
    print_message("validation: %llu windows %.4f, 20 of them %.4f\n",
                  (unsigned long long)v_all.examples, v_all.metric, v_sub.metric);
    assert_true(v_all.examples > 20);
    assert_int_equal(v_sub.examples, 20);
    assert_true(fabs(v_all.metric - v_sub.metric) < 0.1 * v_all.metric);
    tp_params_free(p);
    w->vt->free(w);
    w20->vt->free(w20);
}

static void test_adam_learns(void **state)
{
    tp_workload *w = create_tiny(NULL, 0);
    char err[512];
    uint64_t n = w->num_params;
    float *p = tp_params_alloc(n), *g = tp_params_alloc(n), *m = tp_params_alloc(n),
          *v = tp_params_alloc(n);
    assert_int_equal(w->vt->init_params(w, 0, p, err, sizeof err), 0);
    tp_eval_result before, after, test;
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_VALIDATION, &before, err, sizeof err), 0);
    tp_rng r;
    tp_rng_seed(&r, 4);
    enum { B = 16, STEPS = 300 };
    uint32_t idx[B];
    double loss = 0.0, first = 0.0;
    const float lr = 3e-3f, b1 = 0.9f, b2 = 0.99f;
    for (int step = 1; step <= STEPS; step++) {
        for (int i = 0; i < B; i++)
            idx[i] = (uint32_t)tp_rng_below(&r, w->split_size[TP_SPLIT_TRAIN]);
        assert_int_equal(
            w->vt->loss_and_grad(w, p, idx, NULL, B, NULL, 0, g, &loss, NULL, err, sizeof err), 0);
        if (step == 1)
            first = loss;
        float c1 = 1.0f - powf(b1, (float)step), c2 = 1.0f - powf(b2, (float)step);
        for (uint64_t i = 0; i < n; i++) {
            m[i] = b1 * m[i] + (1.0f - b1) * g[i];
            v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
            p[i] -= lr * (m[i] / c1) / (sqrtf(v[i] / c2) + 1e-8f);
        }
    }
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_VALIDATION, &after, err, sizeof err), 0);
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_TEST, &test, err, sizeof err), 0);
    double uniform = log((double)tp_wltest_tensor(w, "tok_embedding")->shape[0]);
    print_message("Adam %d steps of %d: train loss %.3f -> %.3f, validation %.3f -> %.3f, test "
                  "%.3f nats/char (uniform %.3f)\n",
                  STEPS, B, first, loss, before.metric, after.metric, test.metric, uniform);
    assert_true(after.metric < 0.7 * uniform);
    assert_true(test.metric < 0.7 * uniform);
    assert_true(after.metric < before.metric);
    tp_params_free(p);
    tp_params_free(g);
    tp_params_free(m);
    tp_params_free(v);
    w->vt->free(w);
}

/* The base and the three variants of the real kjv_lm.cfg build on the tiny text, and each
 * variant changes what it should. */
static void test_cfg_variants(void **state)
{
    static const char *const variants[] = {NULL, "post_ln", "attention_temp", "glu_tanh"};
    char err[2048];
    double losses[4];
    uint64_t nparams[4];
    float *p0 = NULL;
    for (int k = 0; k < 4; k++) {
        tp_workload_config cfg;
        memset(&cfg, 0, sizeof cfg);
        int rc = tp_config_load_workload(TP_TEST_SOURCE_DIR "/workloads/kjv_lm/kjv_lm.cfg", &cfg,
                                         err, sizeof err);
        if (rc)
            fail_msg("load: %s", err);
        assert_string_equal(cfg.name, "kjv_lm");
        assert_int_equal(cfg.num_variants, 3);
        if ((rc = tp_config_select_variant(&cfg, variants[k], err, sizeof err)))
            fail_msg("variant %s: %s", variants[k], err);
        char set[700];
        snprintf(set, sizeof set, "data.dir=%s", tiny_dir);
        if ((rc = tp_config_apply_override(&cfg, set, err, sizeof err)))
            fail_msg("override: %s", err);
        assert_true(cfg.validation_target > 0.0 && cfg.test_target > 0.0);
        tp_wl_params wp = {cfg.file, cfg.options, cfg.num_options};
        tp_workload *w = NULL;
        if ((rc = tp_workload_find("kjv_lm")->create(&wp, &w, err, sizeof err)))
            fail_msg("create %s: %s", variants[k] ? variants[k] : "base", err);
        float *p = tp_params_alloc(w->num_params);
        assert_int_equal(w->vt->init_params(w, 1, p, err, sizeof err), 0);
        if (k == 0)
            p0 = p;
        uint32_t idx[2] = {0, 1};
        float per[2];
        /* attention_temp has the base's layout: evaluate both on the same parameters. */
        losses[k] = tp_wltest_loss_at(w, k == 2 ? p0 : p, idx, NULL, 2, NULL, 0, per);
        nparams[k] = w->num_params;
        print_message("%-14s %8llu parameters, %2u tensors, loss at init %.4f (targets %.3f / "
                      "%.3f)\n",
                      variants[k] ? variants[k] : "base", (unsigned long long)w->num_params,
                      w->num_tensors, losses[k], cfg.validation_target, cfg.test_target);
        if (k == 1)
            assert_null(tp_wltest_tensor(w, "ln_f.scale"));
        if (k == 3) {
            const tp_tensor_info *fc1 = tp_wltest_tensor(w, "block0.mlp.fc1.weight");
            assert_int_equal(fc1->shape[1],
                             2 * tp_wltest_tensor(w, "block0.mlp.fc2.weight")->shape[0]);
        }
        if (p != p0)
            tp_params_free(p);
        w->vt->free(w);
        tp_config_free_workload(&cfg);
    }
    tp_params_free(p0);
    uint64_t D = 128;
    assert_int_equal(nparams[1], nparams[0] - 2 * D);                   /* no final LN */
    assert_int_equal(nparams[2], nparams[0]);                           /* same layout */
    assert_int_equal(nparams[3], nparams[0] + 4 * (D * 4 * D + 4 * D)); /* the GLU's second half */
    assert_true(losses[2] != losses[0]);
}

/* ---------------------------------------------------------------------------------------- */
/* Options, prepare, the cache file */

static void test_option_errors(void **state)
{
    char err[2048];
    tp_workload *w = NULL;
    tp_wl_option bad_key[] = {{"data.dir", tiny_dir, 0, 3}, {"data.bogus", NULL, 1, 7}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_key, 2, &w, err, sizeof err), TP_ECONFIG);
    print_message("unknown key: %s\n", err);
    assert_non_null(strstr(err, CFG ":7: data.bogus"));
    assert_null(w);
    /* prepare checks the same options. */
    assert_int_equal(prepare(bad_key, 2, err, sizeof err), TP_ECONFIG);
    assert_non_null(strstr(err, CFG ":7: data.bogus"));

    tp_wl_option bad_type[] = {{"model.width", "wide", 0, 9}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_type, 1, &w, err, sizeof err), TP_ECONFIG);
    assert_non_null(strstr(err, CFG ":9: model.width"));

    tp_wl_option bad_choice[] = {{"model.norm", "rms", 0, 11}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_choice, 1, &w, err, sizeof err), TP_ECONFIG);
    print_message("bad choice: %s\n", err);
    assert_non_null(strstr(err, CFG ":11: model.norm"));
    assert_non_null(strstr(err, "\"post_ln\""));

    tp_wl_option heads[] = {{"data.dir", tiny_dir, 0, 3}, {"model.heads", NULL, 3, 12}};
    assert_int_equal(tp_wltest_create(WL, CFG, heads, 2, &w, err, sizeof err), TP_ECONFIG);
    print_message("heads: %s\n", err);
    assert_non_null(strstr(err, CFG ":12: model.heads"));

    tp_wl_option ctx[] = {{"data.context", NULL, 0, 13}};
    assert_int_equal(tp_wltest_create(WL, CFG, ctx, 1, &w, err, sizeof err), TP_ECONFIG);
    assert_non_null(strstr(err, CFG ":13: data.context"));

    tp_wl_option glu[] = {{"model.glu", NULL, 2, 14}};
    assert_int_equal(tp_wltest_create(WL, CFG, glu, 1, &w, err, sizeof err), TP_ECONFIG);
    assert_non_null(strstr(err, CFG ":14: model.glu"));

    /* A context longer than a split: 66 books of two short lines. */
    char dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/short", tmp_root);
    assert_int_equal(mkdir(dir, 0777), 0);
    snprintf(path, sizeof path, "%s/kjv-v1.txt", dir);
    size_t len;
    char *t = books_text(TP_KJV_BOOKS, &len);
    write_file(path, t, len);
    free(t);
    tp_wl_option huge[] = {{"data.dir", dir, 0, 3}, {"data.context", NULL, 100, 15}};
    assert_int_equal(tp_wltest_create(WL, CFG, huge, 2, &w, err, sizeof err), TP_ECONFIG);
    print_message("long context: %s\n", err);
    assert_non_null(strstr(err, CFG ":15: data.context"));
    assert_null(w);
}

static void test_missing_cache(void **state)
{
    char err[2048], dir[700];
    snprintf(dir, sizeof dir, "%s/never_prepared", tmp_root);
    tp_workload *w = NULL;
    tp_wl_option o[] = {{"data.dir", dir, 0, 3}};
    int rc = tp_wltest_create(WL, CFG, o, 1, &w, err, sizeof err);
    print_message("missing cache: %s\n", err);
    assert_int_equal(rc, TP_ENOENT);
    assert_null(w);
    assert_non_null(strstr(err, CFG ":3: data.dir"));
    assert_non_null(strstr(err, "kjv-v1.txt"));
    assert_non_null(strstr(err, "prepare"));
    assert_non_null(strstr(err, "apt-get install bible-kjv"));
}

static void test_prepare_without_bible(void **state)
{
    char err[2048], dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/no_bible/sub", tmp_root);
    tp_wl_option o[] = {{"data.dir", dir, 0, 3}, {"data.bible", "/nonexistent/bible", 0, 4}};
    int rc = prepare(o, 2, err, sizeof err);
    print_message("no bible: %s\n", err);
    assert_int_equal(rc, TP_ENOENT);
    assert_non_null(strstr(err, CFG ":4: data.bible"));
    assert_non_null(strstr(err, "apt-get install bible-kjv"));
    snprintf(path, sizeof path, "%s/kjv-v1.txt", dir);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
    /* With the text already there, prepare has nothing to do and runs nothing. */
    tp_wl_option done[] = {{"data.dir", tiny_dir, 0, 3},
                           {"data.bible", "/nonexistent/bible", 0, 4}};
    assert_int_equal(prepare(done, 2, err, sizeof err), 0);
}

static void test_corrupt_cache(void **state)
{
    char err[2048], dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/corrupt", tmp_root);
    assert_int_equal(mkdir(dir, 0777), 0);
    snprintf(path, sizeof path, "%s/kjv-v1.txt", dir);
    write_file(path, "one book\n\nanother\n", 18);
    tp_workload *w = NULL;
    tp_wl_option o[] = {{"data.dir", dir, 0, 3}};
    int rc = tp_wltest_create(WL, CFG, o, 1, &w, err, sizeof err);
    print_message("corrupt: %s\n", err);
    assert_int_equal(rc, TP_EDATA);
    assert_non_null(strstr(err, "2 books"));
    assert_non_null(strstr(err, "run prepare again"));
    write_file(path, "", 0);
    assert_int_equal(tp_wltest_create(WL, CFG, o, 1, &w, err, sizeof err), TP_EDATA);
    assert_non_null(strstr(err, "empty"));
    assert_null(w);
}

/* ---------------------------------------------------------------------------------------- */
/* The real text */

static void test_real_text(void **state)
{
    if (access(BIBLE, X_OK) != 0) {
        print_message("skipped: " BIBLE " missing (install bible-kjv)\n");
        skip();
    }
    char err[2048], dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/real/a/b", tmp_root); /* made with mkdir -p semantics */
    snprintf(path, sizeof path, "%s/kjv-v1.txt", dir);
    tp_wl_option o[] = {{"data.dir", dir, 0, 3}, {"model.depth", NULL, 1, 4}};
    int rc = prepare(o, 2, err, sizeof err);
    if (rc)
        fail_msg("prepare: %s", err);
    struct stat st, st2;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    print_message("prepare wrote %s: %lld bytes\n", path, (long long)st.st_size);
    assert_int_equal(st.st_size, 4137912);
    /* Idempotent: a second prepare leaves the file alone. */
    assert_int_equal(prepare(o, 2, err, sizeof err), 0);
    assert_int_equal(stat(path, &st2), 0);
    assert_int_equal(st.st_ino, st2.st_ino);
    assert_int_equal(st.st_mtim.tv_nsec, st2.st_mtim.tv_nsec);

    tp_workload *w = tp_wltest_create_ok(WL, CFG, o, 2);
    assert_int_equal(tp_wltest_tensor(w, "tok_embedding")->shape[0], 63);
    /* Windows of 65 characters: train 3,974,718, validation 81,070, test 82,059 characters. */
    assert_int_equal(w->split_size[TP_SPLIT_TRAIN], 3974718 / 65);
    assert_int_equal(w->split_size[TP_SPLIT_VALIDATION], 256);
    assert_int_equal(w->split_size[TP_SPLIT_TEST], 256);
    float *p = tp_params_alloc(w->num_params);
    assert_int_equal(w->vt->init_params(w, 0, p, err, sizeof err), 0);
    tp_eval_result ev;
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_VALIDATION, &ev, err, sizeof err), 0);
    print_message("real text: vocabulary 63, %llu training windows, validation loss at init "
                  "%.3f nats/char\n",
                  (unsigned long long)w->split_size[TP_SPLIT_TRAIN], ev.metric);
    assert_true(ev.metric > 2.0 && ev.metric < 10.0);
    tp_params_free(p);
    w->vt->free(w);

    /* The text itself: the first verse, the boundary Genesis / Exodus, the last verse. */
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *text = malloc((size_t)st.st_size + 1);
    assert_int_equal(fread(text, 1, (size_t)st.st_size, f), (size_t)st.st_size);
    fclose(f);
    text[st.st_size] = '\0';
    static const char first[] = "In the beginning God created the heaven and the earth.\n";
    assert_memory_equal(text, first, sizeof first - 1);
    const char *sep = strstr(text, "\n\n");
    assert_non_null(sep);
    static const char gen_exo[] = "he was put in a coffin in Egypt.\n\nNow these are the names";
    assert_memory_equal(sep - 32, gen_exo, sizeof gen_exo - 1);
    static const char last[] = "Christ be with you all. Amen.\n";
    assert_string_equal(text + st.st_size - (sizeof last - 1), last);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_normalize_errors),
        cmocka_unit_test(test_book_split),
        cmocka_unit_test(test_corpus_errors),
        cmocka_unit_test(test_sizes_and_tensors),
        cmocka_unit_test(test_grad_pre_ln),
        cmocka_unit_test(test_grad_post_ln),
        cmocka_unit_test(test_grad_attention_temp),
        cmocka_unit_test(test_grad_glu_tanh),
        cmocka_unit_test(test_determinism_and_eval_mode),
        cmocka_unit_test(test_weights_chunks_and_eval),
        cmocka_unit_test(test_adam_learns),
        cmocka_unit_test(test_cfg_variants),
        cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_missing_cache),
        cmocka_unit_test(test_prepare_without_bible),
        cmocka_unit_test(test_corrupt_cache),
        cmocka_unit_test(test_real_text),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
