/*
 * test_hostapi.c - the tp_host table of core/hostapi.c on a tiny fake workload: the input
 * queue is a fresh permutation every epoch and follows the seed, tensor info honours the
 * caller's struct_size, tracked allocation (alignment, zeroing, foreign pointers refused,
 * leaks counted), loss_and_grad forwarding (current parameters, option defaults for short
 * structs, range checks, a new dropout seed per call), hyperparameter lookup, vector kernels.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/hostapi.h"

/* -- a fake workload: 10 training examples, two tensors of 4 + 2 floats ------------------- */

#define N_TRAIN 10

typedef struct fake_wl {
    tp_workload base;
    tp_tensor_info tensors[2];
    const float *last_params;
    uint32_t last_n;
    tp_loss_opts last_opts;
    uint64_t last_seed;
    int calls;
} fake_wl;

static int fake_init(tp_workload *w, uint64_t seed, float *params, char *err, size_t errlen)
{
    for (uint64_t i = 0; i < w->num_params; i++)
        params[i] = (float)(i + 1);
    return 0;
}

static int fake_loss(tp_workload *w, const float *params, const uint32_t *idx, const float *weights,
                     uint32_t n, const tp_loss_opts *opts, uint64_t dropout_seed, float *grad,
                     double *loss, float *per_example, char *err, size_t errlen)
{
    fake_wl *f = (fake_wl *)w;
    f->last_params = params;
    f->last_n = n;
    f->last_opts = *opts;
    f->last_seed = dropout_seed;
    f->calls++;
    double sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (idx[i] >= N_TRAIN) {
            snprintf(err, errlen, "index %u out of range", idx[i]);
            return TP_ERANGE;
        }
        float l = (float)idx[i];
        sum += (weights ? weights[i] : 1.0f) * l;
        if (per_example)
            per_example[i] = l;
    }
    *loss = sum / n;
    if (grad)
        for (uint64_t i = 0; i < w->num_params; i++)
            grad[i] = 2 * params[i];
    return 0;
}

static int fake_eval(tp_workload *w, const float *params, tp_split split, tp_eval_result *out,
                     char *err, size_t errlen)
{
    return 0;
}

static void fake_free(tp_workload *w)
{
}

static const tp_workload_vtable fake_vt = {fake_init, fake_loss, fake_eval, fake_free};

static void fake_make(fake_wl *f)
{
    memset(f, 0, sizeof *f);
    f->base.vt = &fake_vt;
    f->base.name = "fake";
    f->base.metric = "accuracy";
    f->base.maximize = 1;
    f->base.split_size[TP_SPLIT_TRAIN] = N_TRAIN;
    f->base.num_params = 6;
    f->base.num_tensors = 2;
    f->base.tensors = f->tensors;
    tp_tensor_info w = {sizeof w, TP_SDK_VERSION, "fc.weight", TP_PARAM_ROLE_WEIGHT,
                        2,        {2, 2, 1, 1},   0,           4};
    tp_tensor_info b = {sizeof b, TP_SDK_VERSION, "fc.bias", TP_PARAM_ROLE_BIAS,
                        1,        {2, 1, 1, 1},   4,         2};
    f->tensors[0] = w;
    f->tensors[1] = b;
}

typedef struct fixture {
    fake_wl wl;
    tp_session *s;
    tp_ctx *ctx;
    FILE *log;
    const tp_host *h;
} fixture;

static fixture *make_fixture(uint64_t seed)
{
    fixture *fx = calloc(1, sizeof *fx);
    fake_make(&fx->wl);
    fx->log = tmpfile();
    tp_session_config sc = {.workload = &fx->wl.base,
                            .seed = seed,
                            .batch_size = 4,
                            .step_hint = 100,
                            .budget = 10,
                            .log = fx->log};
    char err[256];
    assert_int_equal(tp_session_create(&sc, &fx->s, err, sizeof err), 0);
    const char *names[] = {"learning_rate", "warmup_factor"};
    double values[] = {0.5, 0.05};
    fx->ctx = tp_session_ctx_new(fx->s, "opt", names, values, 2);
    assert_non_null(fx->ctx);
    fx->h = tp_hostapi_table();
    return fx;
}

static void free_fixture(fixture *fx)
{
    tp_session_free(fx->s);
    fclose(fx->log);
    free(fx);
}

static int log_contains(fixture *fx, const char *needle)
{
    char buf[8192];
    fflush(fx->log);
    rewind(fx->log);
    size_t n = fread(buf, 1, sizeof buf - 1, fx->log);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

/* -- tests ---------------------------------------------------------------------------------- */

static void test_table_header(void **state)
{
    const tp_host *h = tp_hostapi_table();
    assert_int_equal(h->struct_size, sizeof(tp_host));
    assert_int_equal(h->sdk_version, TP_SDK_VERSION);
    assert_non_null(h->hparam); /* the last field of 1.0 */
    assert_true(TP_FIELD_PRESENT(h, tp_host, sym_eig));
    assert_non_null(h->sym_eig); /* added in 1.1 */
}

static void test_input_queue_epochs(void **state)
{
    fixture *a = make_fixture(3), *b = make_fixture(3), *c = make_fixture(4);
    uint32_t ia[3 * N_TRAIN], ib[3 * N_TRAIN], ic[3 * N_TRAIN];
    /* Taken in uneven chunks: the stream does not care how it is cut. */
    assert_int_equal(a->h->next_indices(a->ctx, 7, ia), TP_OK);
    assert_int_equal(a->h->next_indices(a->ctx, 23, ia + 7), TP_OK);
    assert_int_equal(b->h->next_indices(b->ctx, 30, ib), TP_OK);
    assert_int_equal(c->h->next_indices(c->ctx, 30, ic), TP_OK);
    assert_memory_equal(ia, ib, sizeof ia);
    assert_memory_not_equal(ia, ic, sizeof ia);
    for (int e = 0; e < 3; e++) { /* each epoch is a permutation */
        int seen[N_TRAIN] = {0};
        for (int i = 0; i < N_TRAIN; i++)
            seen[ia[e * N_TRAIN + i]]++;
        for (int i = 0; i < N_TRAIN; i++)
            assert_int_equal(seen[i], 1);
    }
    assert_memory_not_equal(ia, ia + N_TRAIN, N_TRAIN * sizeof *ia); /* reshuffled */
    assert_int_equal(a->h->next_indices(a->ctx, 3, NULL), TP_EINVAL);
    free_fixture(a);
    free_fixture(b);
    free_fixture(c);
}

static void test_tensor_info_respects_struct_size(void **state)
{
    fixture *fx = make_fixture(0);
    const tp_host *h = fx->h;
    assert_int_equal(h->param_tensor_count(fx->ctx), 2);
    tp_tensor_info t;
    TP_STRUCT_INIT(&t, tp_tensor_info);
    assert_int_equal(h->param_tensor_info(fx->ctx, 1, &t), TP_OK);
    assert_string_equal(t.name, "fc.bias");
    assert_int_equal(t.role, TP_PARAM_ROLE_BIAS);
    assert_int_equal(t.offset, 4);
    assert_int_equal(t.numel, 2);

    /* An older plugin that knows only the fields up to `role`: nothing past it is written. */
    unsigned char buf[sizeof(tp_tensor_info) + 16];
    memset(buf, 0xab, sizeof buf);
    tp_tensor_info *small = (tp_tensor_info *)buf;
    small->struct_size = (uint32_t)offsetof(tp_tensor_info, ndim);
    assert_int_equal(h->param_tensor_info(fx->ctx, 0, small), TP_OK);
    assert_int_equal(small->role, TP_PARAM_ROLE_WEIGHT);
    for (size_t i = offsetof(tp_tensor_info, ndim); i < sizeof buf; i++)
        assert_int_equal(buf[i], 0xab);

    assert_int_equal(h->param_tensor_info(fx->ctx, 2, &t), TP_ERANGE);
    assert_true(log_contains(fx, "index 2 out of range"));
    assert_int_equal(h->param_tensor_info(fx->ctx, 0, NULL), TP_EINVAL);
    assert_int_equal(h->param_tensor_info(NULL, 0, &t), TP_EINVAL);
    assert_int_equal(h->param_tensor_count(NULL), 0);

    uint64_t n = 0;
    float *p = h->params(fx->ctx, &n);
    assert_int_equal(n, 6);
    assert_true(((uintptr_t)p & 63) == 0);
    assert_true(p[5] == 6.0f); /* the workload's init */
    assert_null(h->params(NULL, &n));
    free_fixture(fx);
}

static void test_tracked_allocation(void **state)
{
    fixture *fx = make_fixture(0);
    const tp_host *h = fx->h;
    float *a = h->alloc(fx->ctx, 1000 * sizeof(float));
    char *b = h->alloc(fx->ctx, 3);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(((uintptr_t)a & 63) == 0 && ((uintptr_t)b & 63) == 0);
    for (int i = 0; i < 1000; i++)
        assert_true(a[i] == 0.0f);
    h->free(fx->ctx, a);
    h->free(fx->ctx, NULL); /* a no-op */
    int on_stack;
    h->free(fx->ctx, &on_stack); /* not ours: refused with a log line, no crash */
    assert_true(log_contains(fx, "was not allocated by this plugin"));
    /* Another plugin's context cannot free this one's memory. */
    tp_ctx *other = tp_session_ctx_new(fx->s, "sched", NULL, NULL, 0);
    h->free(other, b);
    assert_int_equal(tp_session_ctx_release(fx->ctx), 1); /* b leaked, and is freed now */
    assert_int_equal(tp_session_ctx_release(other), 0);
    assert_null(h->alloc(NULL, 8));
    free_fixture(fx);
}

static void test_loss_and_grad_forwarding(void **state)
{
    fixture *fx = make_fixture(0);
    const tp_host *h = fx->h;
    uint32_t idx[4] = {1, 2, 3, 4};
    float grad[6];
    tp_batch b;
    TP_STRUCT_INIT(&b, tp_batch);
    b.size = 4;
    b.idx = idx;
    double loss = 0;
    assert_int_equal(h->loss_and_grad(fx->ctx, NULL, &b, NULL, grad, &loss), TP_OK);
    assert_true(loss == 2.5);
    assert_ptr_equal(fx->wl.last_params, h->params(fx->ctx, NULL)); /* NULL: current params */
    assert_true(grad[5] == 12.0f);
    uint64_t seed1 = fx->wl.last_seed;

    /* Options from an older, shorter struct: absent fields take their defaults. */
    tp_loss_opts o;
    TP_STRUCT_INIT(&o, tp_loss_opts);
    o.label_smoothing = 0.1f;
    o.dropout_rate = 0.5f;
    o.flags = TP_LOSS_EVAL_MODE;
    o.struct_size = (uint32_t)offsetof(tp_loss_opts, dropout_rate);
    float weights[4] = {1, 1, 0, 0};
    b.weights = weights;
    assert_int_equal(h->loss_and_grad(fx->ctx, NULL, &b, &o, NULL, &loss), TP_OK);
    assert_true(loss == 0.75);
    assert_true(fx->wl.last_opts.label_smoothing == 0.1f);
    assert_true(fx->wl.last_opts.dropout_rate == 0.0f);
    assert_int_equal(fx->wl.last_opts.flags, 0);
    assert_true(fx->wl.last_seed != seed1); /* a fresh dropout seed per call */

    float per[4];
    assert_int_equal(h->per_example_loss(fx->ctx, NULL, &b, NULL, per), TP_OK);
    assert_true(per[3] == 4.0f);

    /* Bad arguments: codes and log lines, never a crash. */
    o.struct_size = sizeof o;
    o.label_smoothing = 1.5f;
    assert_int_equal(h->loss_and_grad(fx->ctx, NULL, &b, &o, NULL, &loss), TP_ERANGE);
    assert_int_equal(h->loss_and_grad(fx->ctx, NULL, NULL, NULL, NULL, &loss), TP_EINVAL);
    b.struct_size = 8;
    assert_int_equal(h->loss_and_grad(fx->ctx, NULL, &b, NULL, NULL, &loss), TP_EINVAL);
    assert_true(log_contains(fx, "struct_size 8 too small"));
    b.struct_size = sizeof b;
    idx[0] = 99;
    assert_int_equal(h->loss_and_grad(fx->ctx, NULL, &b, NULL, NULL, &loss), TP_ERANGE);
    assert_true(log_contains(fx, "index 99 out of range"));
    assert_int_equal(h->per_example_loss(fx->ctx, NULL, &b, NULL, NULL), TP_EINVAL);
    assert_int_equal(h->loss_and_grad(NULL, NULL, &b, NULL, NULL, &loss), TP_EINVAL);
    free_fixture(fx);
}

static void test_hparams_and_state(void **state)
{
    fixture *fx = make_fixture(0);
    const tp_host *h = fx->h;
    double v = 0;
    assert_int_equal(h->hparam(fx->ctx, "warmup_factor", &v), TP_OK);
    assert_true(v == 0.05);
    assert_int_equal(h->hparam(fx->ctx, "momentum", &v), TP_ENOENT);
    assert_int_equal(h->hparam(fx->ctx, NULL, &v), TP_EINVAL);
    const tp_train_state *ts = h->train_state(fx->ctx);
    assert_non_null(ts);
    assert_int_equal(ts->struct_size, sizeof *ts);
    assert_int_equal(ts->step_hint, 100);
    assert_int_equal(ts->batch_size, 4);
    assert_int_equal(ts->train_size, N_TRAIN);
    assert_int_equal(ts->num_params, 6);
    assert_true(isnan(ts->last_validation_metric));
    assert_null(h->train_state(NULL));
    free_fixture(fx);
}

static void test_vector_kernels(void **state)
{
    const tp_host *h = tp_hostapi_table();
    float x[5] = {1, 2, 3, 4, 5}, y[5] = {1, 1, 1, 1, 1};
    h->vec_axpy(5, 2.0f, x, y);
    assert_true(y[4] == 11.0f);
    h->vec_scale(5, 0.5f, y);
    assert_true(y[0] == 1.5f);
    assert_true(h->vec_dot(5, x, x) == 55.0);
    assert_true(fabs(h->vec_nrm2(5, x) - sqrt(55.0)) < 1e-12);
    h->vec_copy(5, x, y);
    assert_memory_equal(x, y, sizeof x);
    /* C(2x2) = A(2x3) B(3x2), and with B given transposed. */
    float a[6] = {1, 2, 3, 4, 5, 6}, bm[6] = {1, 0, 0, 1, 1, 1}, bt[6] = {1, 0, 1, 0, 1, 1};
    float c[4], c2[4];
    assert_int_equal(h->gemm(0, 0, 2, 2, 3, 1.0f, a, bm, 0.0f, c), TP_OK);
    assert_int_equal(h->gemm(0, 1, 2, 2, 3, 1.0f, a, bt, 0.0f, c2), TP_OK);
    float want[4] = {4, 5, 10, 11};
    assert_memory_equal(c, want, sizeof want);
    assert_memory_equal(c2, want, sizeof want);
    assert_int_equal(h->gemm(0, 0, 2, 2, 3, 1.0f, NULL, bm, 0.0f, c), TP_EINVAL);
}

/* sym_eig against A = Q diag(d) Q^T built here from a known orthonormal Q (a product of
 * Givens rotations), then A U = U diag(w) and U^T U = I on a random symmetric matrix. */
static void test_sym_eig(void **state)
{
    const tp_host *h = tp_hostapi_table();
    enum { N = 7 };
    double q[N * N], a[N * N], w[N];
    const double d[N] = {-2.0, 1e-6, 0.5, 3.0, 7.25, 10.0, 100.0};

    for (int i = 0; i < N * N; i++)
        q[i] = i % (N + 1) == 0 ? 1.0 : 0.0;
    for (int r = 0; r < N - 1; r++) { /* q = q G(r, r+1, theta_r) */
        double c = cos(0.3 + r), s = sin(0.3 + r);
        for (int i = 0; i < N; i++) {
            double x = q[i * N + r], y = q[i * N + r + 1];
            q[i * N + r] = c * x - s * y;
            q[i * N + r + 1] = s * x + c * y;
        }
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int k = 0; k < N; k++)
                acc += q[i * N + k] * d[k] * q[j * N + k];
            a[i * N + j] = acc;
        }
    double a0[N * N];
    memcpy(a0, a, sizeof a);
    assert_int_equal(h->sym_eig(N, a, w), TP_OK);
    double max_w = 0.0, max_res = 0.0, max_orth = 0.0;
    for (int k = 0; k < N; k++) /* ascending, and d is sorted */
        max_w = fmax(max_w, fabs(w[k] - d[k]) / fmax(1.0, fabs(d[k])));
    for (int k = 0; k < N; k++)
        for (int i = 0; i < N; i++) {
            double av = 0.0, uu = 0.0;
            for (int j = 0; j < N; j++) {
                av += a0[i * N + j] * a[j * N + k];
                uu += a[j * N + i] * a[j * N + k];
            }
            max_res = fmax(max_res, fabs(av - w[k] * a[i * N + k]));
            max_orth = fmax(max_orth, fabs(uu - (i == k ? 1.0 : 0.0)));
        }
    print_message("sym_eig n=%d: eigenvalue error %.2g, |AU - UW| %.2g, |U^T U - I| %.2g\n", N,
                  max_w, max_res, max_orth);
    assert_true(max_w < 1e-12);
    assert_true(max_res < 1e-11);
    assert_true(max_orth < 1e-12);

    /* Refusals: NULL, n = 0, a non-finite entry. */
    assert_int_equal(h->sym_eig(N, NULL, w), TP_EINVAL);
    assert_int_equal(h->sym_eig(N, a, NULL), TP_EINVAL);
    assert_int_equal(h->sym_eig(0, a, w), TP_EINVAL);
    a[3] = NAN;
    assert_int_equal(h->sym_eig(N, a, w), TP_ERANGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_header),
        cmocka_unit_test(test_input_queue_epochs),
        cmocka_unit_test(test_tensor_info_respects_struct_size),
        cmocka_unit_test(test_tracked_allocation),
        cmocka_unit_test(test_loss_and_grad_forwarding),
        cmocka_unit_test(test_hparams_and_state),
        cmocka_unit_test(test_vector_kernels),
        cmocka_unit_test(test_sym_eig),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
