/*
 * kjv_lm.c - the kjv_lm workload: a character-level decoder-only Transformer language model on
 * the King James Bible, the analog of AlgoPerf's wmt (and finewebedu_lm) workloads. Metric:
 * validation cross-entropy per character in nats (lower is better), named "loss" (it is the
 * loss, as criteo1tb's metric, so AlgoPerf's export writes it as validation/loss).
 *
 * Data. Debian's bible-kjv package prints the whole Bible with `bible "Gen1:1-Rev22:21"`. A
 * worker may not run programs, so the workload's prepare hook (run by the host before any worker
 * starts) runs it (posix_spawn with an argv, no shell, stdin /dev/null), checks its exit status,
 * normalises the text (tp_kjv_normalize: verse numbers and the "Book chapter" headings dropped,
 * one verse per line with its wrapped lines joined by one space, case and punctuation kept, one
 * empty line between books) and writes it atomically (a temporary file in the same directory,
 * fsync, rename) as <data.dir>/kjv-v1.txt: 66 books, 31,102 verses, 4,137,912 bytes. The "v1"
 * names this normalisation; a change to it gets a new name, so an old cache is never misread.
 * data.dir defaults to $XDG_CACHE_HOME/trainperf/kjv, else $HOME/.cache/trainperf/kjv (created
 * with mkdir -p semantics); "~/" at its start means $HOME. prepare does nothing when the file is
 * already there. data.bible (default /usr/bin/bible) is the program it runs. create() reads the
 * file and fails, naming what to run and install, when it is missing.
 *
 * Vocabulary: the distinct bytes of the file, ascending (63 for the KJV: '\n', ' ', ! ' ( ) , -
 * . : ; ? and the letters but 'X'); token id = rank of the byte. Splits by whole book: validation
 * = Ruth, Ecclesiastes, Joel, Galatians, 1 John (81,070 characters); test = Esther, Song of
 * Solomon, Amos, Ephesians (82,059); train = the other 57 books (3,974,718). A split's stream is
 * its books in canonical order, each verse line with its '\n' (the empty lines between books
 * left out). Example i of a split is the window of T + 1 characters starting at i (T + 1)
 * (non-overlapping; T = data.context): input its first T, targets its last T. Training example
 * i is window i (61,149 windows at T = 64). Evaluation uses data.eval_windows windows of the
 * split spread evenly over it (window floor(k n / m), k < m, for n windows; 0: all), the same
 * ones every time; the train split's size is all its windows, the others' the windows evaluated.
 *
 * Model (width D, depth L, heads H, MLP width F = model.mlp_dim, 4 D when 0):
 *   x = tok_embedding[ids] + pos_embedding[0 .. T)          (B, T, D), then dropout
 *   L blocks, pre-LN (model.norm = "pre_ln"):
 *     x = x + dropout(attn(LN1(x)));  x = x + dropout(mlp(LN2(x)))
 *   or post-LN ("post_ln", the original Transformer's order):
 *     x = LN1(x + dropout(attn(x)));  x = LN2(x + dropout(mlp(x)))
 *   attn(h) = causal multi-head attention (tp_attention, temperature model.attention_temp) of
 *     q = h Wq, k = h Wk, v = h Wv, then @ Wo; no biases (as WMT's use_bias = False);
 *   mlp(h) = dropout(act(h W1 + b1)) W2 + b2, act = model.activation (gelu; WMT's is relu,
 *     GELU is the decoder-LM habit); with model.glu, W1 is (D, 2F) and the hidden is
 *     act(h W1[:, :F]) * (h W1[:, F:]) (tp_glu), as WMT's GLU;
 *   pre-LN ends with a final LN ("ln_f"); logits = x Whead + bhead (B, T, V), an untied output
 *     projection (the engine has no transposed matmul to tie it to the embedding).
 * Layer norms have eps 1e-6 (Flax's default), scale and shift. Dropout (tp_loss_opts, training
 * mode only) on the embeddings, the attention output, the MLP hidden and the MLP output, as
 * WMT's model; not on attention probabilities (tp_attention has none).
 *
 * Init (WMT's): every dense kernel Xavier uniform (limit sqrt(6 / (fan_in + fan_out)), each half
 * of a GLU W1 as its own (D, F) kernel), biases 0, LN scale 1 and shift 0, token embedding
 * normal(0, 1), position embedding normal(0, 0.02); tensor t from tp_rng_seed2(seed, t).
 *
 * Loss: per example, the mean over its T positions of the softmax cross-entropy with the
 * submission's label smoothing (over V classes); a batch's loss is the mean over examples of
 * weight * loss. Metric: the mean cross-entropy per character, no smoothing, eval mode. A batch
 * (or an evaluation) runs in chunks of 4096 tokens, gradients accumulating, so memory stays
 * bounded whatever the batch size.
 *
 * Variants (kjv_lm.cfg; AlgoPerf v0.5's wmt kinds): post_ln (model.norm), attention_temp
 * (model.attention_temp = 4.0, WMT's value: its query input is scaled by 4, the same as the
 * logits times 4 since the query projection has no bias) and glu_tanh (model.glu with tanh).
 *
 * Not here: tokenisers beyond bytes, sequence packing or padding, tied embeddings, attention
 * dropout, BLEU or decoding.
 */
#define _DEFAULT_SOURCE /* mkstemp, fsync, posix_spawn, fchmod */
#include "workloads/kjv_lm/kjv_lm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/nn/nn.h"
#include "core/nn/rng.h"
#include "workloads/common/options.h"

extern char **environ;

#define KJ_NAME        "kjv_lm"
#define KJ_CACHE       "kjv-v1.txt"
#define KJ_PACKAGE     "bible-kjv"
#define KJ_BIBLE       "/usr/bin/bible"
#define KJ_RANGE       "Gen1:1-Rev22:21"
#define KJ_MAX_RAW     ((size_t)64 << 20) /* bytes of `bible` output accepted */
#define KJ_MAX_DEPTH   16
#define KJ_MAX_WIDTH   4096
#define KJ_MAX_CONTEXT 1024
#define KJ_CHUNK_TOK   4096 /* tokens per forward/backward chunk */
#define KJ_LN_EPS      1e-6f
#define KJ_PER_BLOCK   12 /* parameter tensors per block */
#define KJ_MAX_TENSORS (KJ_PER_BLOCK * KJ_MAX_DEPTH + 6)

/* Book indices of the evaluation splits (0 = Genesis). */
static const uint8_t validation_books[] = {7, 20, 28, 47, 61};
static const uint8_t test_books[] = {16, 21, 29, 48};

tp_split tp_kjv_book_split(uint32_t book)
{
    for (size_t i = 0; i < sizeof validation_books; i++)
        if (book == validation_books[i])
            return TP_SPLIT_VALIDATION;
    for (size_t i = 0; i < sizeof test_books; i++)
        if (book == test_books[i])
            return TP_SPLIT_TEST;
    return TP_SPLIT_TRAIN;
}

/* ---------------------------------------------------------------------------------------- */
/* Normalisation of `bible` output */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static int buf_put(buf *b, char c)
{
    if (b->len == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4096;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    b->p[b->len++] = c;
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int tp_kjv_normalize(const char *raw, size_t len, char **out, size_t *out_len, uint32_t *books,
                     uint64_t *verses, char *err, size_t errlen)
{
    *out = NULL;
    *out_len = 0;
    *books = 0;
    *verses = 0;
    buf b = {0};
    char book[128] = "";
    size_t book_len = 0;
    int in_verse = 0, space = 0; /* a verse is open; a space is due before its next byte */
    size_t verse_start = 0;      /* b.len where the open verse's text starts */
    uint64_t line = 0;
    int rc = TP_EDATA;
    for (size_t ls = 0; ls < len;) {
        size_t le = ls;
        while (le < len && raw[le] != '\n')
            le++;
        line++;
        size_t s = ls;
        while (s < le && is_space(raw[s]))
            s++;
        const char *text = NULL; /* bytes of verse text on this line, from text to le */
        if (s == le) {           /* blank: ends the open verse */
            if (in_verse) {
                if (b.len == verse_start) {
                    snprintf(err, errlen, "line %llu: a verse with no text before it",
                             (unsigned long long)line);
                    goto fail;
                }
                if (buf_put(&b, '\n'))
                    goto nomem;
                in_verse = 0;
            }
        } else if (s > ls && is_digit(raw[s])) { /* "  12 text": a verse */
            size_t d = s;
            while (d < le && is_digit(raw[d]))
                d++;
            if (d < le && !is_space(raw[d]) && !in_verse) {
                snprintf(err, errlen, "line %llu: \"%.*s\" is not a verse (\"  12 text\")",
                         (unsigned long long)line, (int)(le - ls > 80 ? 80 : le - ls), raw + ls);
                goto fail;
            }
            if (d < le && !is_space(raw[d])) {
                text = raw + s; /* an indented wrapped line that starts with a digit */
                space = b.len > verse_start;
            } else {
                if (!book_len) {
                    snprintf(err, errlen, "line %llu: a verse before any heading (\"Genesis 1\")",
                             (unsigned long long)line);
                    goto fail;
                }
                if (in_verse) {
                    if (b.len == verse_start) {
                        snprintf(err, errlen, "line %llu: a verse with no text before it",
                                 (unsigned long long)line);
                        goto fail;
                    }
                    if (buf_put(&b, '\n'))
                        goto nomem;
                }
                in_verse = 1;
                space = 0;
                verse_start = b.len;
                (*verses)++;
                text = raw + d;
            }
        } else if (in_verse) { /* a wrapped line of the open verse */
            text = raw + s;
            space = b.len > verse_start;
        } else if (s > ls) {
            snprintf(err, errlen, "line %llu: \"%.*s\" is indented but is not a verse",
                     (unsigned long long)line, (int)(le - ls > 80 ? 80 : le - ls), raw + ls);
            goto fail;
        } else { /* "Book chapter": a heading */
            size_t e = le;
            while (e > s && is_space(raw[e - 1]))
                e--;
            size_t n = e;
            while (n > s && is_digit(raw[n - 1]))
                n--;
            size_t name_end = n;
            while (name_end > s && is_space(raw[name_end - 1]))
                name_end--;
            if (n == e || name_end == n || name_end == s || name_end - s >= sizeof book) {
                snprintf(err, errlen,
                         "line %llu: \"%.*s\" is neither a verse, a wrapped verse line nor a "
                         "chapter heading (\"Genesis 1\")",
                         (unsigned long long)line, (int)(le - ls > 80 ? 80 : le - ls), raw + ls);
                goto fail;
            }
            size_t nl = name_end - s;
            if (nl != book_len || memcmp(book, raw + s, nl)) {
                if (book_len && buf_put(&b, '\n')) /* the empty line between books */
                    goto nomem;
                memcpy(book, raw + s, nl);
                book[nl] = '\0';
                book_len = nl;
                (*books)++;
            }
        }
        if (text) {
            for (const char *c = text; c < raw + le; c++) {
                if (is_space(*c)) {
                    space = b.len > verse_start;
                    continue;
                }
                if ((space && buf_put(&b, ' ')) || buf_put(&b, *c))
                    goto nomem;
                space = 0;
            }
        }
        ls = le < len ? le + 1 : le;
    }
    if (in_verse) {
        if (b.len == verse_start) {
            snprintf(err, errlen, "line %llu: a verse with no text", (unsigned long long)line);
            goto fail;
        }
        if (buf_put(&b, '\n'))
            goto nomem;
    }
    if (!*verses) {
        snprintf(err, errlen, "no verses in %llu lines", (unsigned long long)line);
        goto fail;
    }
    *out = b.p;
    *out_len = b.len;
    return 0;
nomem:
    snprintf(err, errlen, "out of memory normalising the text");
    rc = TP_ENOMEM;
fail:
    free(b.p);
    *books = 0;
    *verses = 0;
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* The cache file cut into splits */

void tp_kjv_corpus_free(tp_kjv_corpus *c)
{
    if (!c)
        return;
    for (int s = 0; s < 3; s++)
        free(c->ids[s]);
    memset(c, 0, sizeof *c);
}

int tp_kjv_corpus_parse(const char *text, size_t len, tp_kjv_corpus *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    if (!len || text[len - 1] != '\n') {
        snprintf(err, errlen, "%s", !len ? "the text is empty" : "the text does not end in '\\n'");
        return TP_EDATA;
    }
    /* First pass: the shape, the vocabulary and the bytes of each split. */
    uint8_t seen[256] = {0};
    uint64_t line = 0, bytes[3] = {0, 0, 0};
    uint32_t book = 0;
    for (size_t ls = 0; ls < len;) {
        size_t le = ls;
        while (text[le] != '\n')
            le++;
        line++;
        if (le == ls) {
            /* Not first, not last, not after another empty line (ls >= 2 here: an empty first
             * line stops at ls == 0). */
            if (ls == 0 || le + 1 == len || text[ls - 2] == '\n') {
                snprintf(err, errlen,
                         "line %llu: an empty line that does not separate two books (books are "
                         "separated by exactly one)",
                         (unsigned long long)line);
                return TP_EDATA;
            }
            book++;
        } else if (book < TP_KJV_BOOKS) {
            bytes[tp_kjv_book_split(book)] += le - ls + 1;
        }
        for (size_t i = ls; i <= le; i++)
            seen[(uint8_t)text[i]] = 1;
        ls = le + 1;
    }
    if (book + 1 != TP_KJV_BOOKS) {
        snprintf(err, errlen, "the text holds %u books, not the %d of the Bible", book + 1,
                 TP_KJV_BOOKS);
        return TP_EDATA;
    }
    uint8_t id_of[256];
    for (int v = 0; v < 256; v++)
        if (seen[v]) {
            id_of[v] = (uint8_t)c->vocab_size;
            c->vocab[c->vocab_size++] = (uint8_t)v;
        }
    for (int s = 0; s < 3; s++) {
        c->ids[s] = malloc(bytes[s] ? bytes[s] : 1);
        if (!c->ids[s]) {
            tp_kjv_corpus_free(c);
            snprintf(err, errlen, "out of memory for the text (%llu bytes)",
                     (unsigned long long)len);
            return TP_ENOMEM;
        }
    }
    /* Second pass: the token ids of each split. */
    book = 0;
    for (size_t ls = 0; ls < len;) {
        size_t le = ls;
        while (text[le] != '\n')
            le++;
        if (le == ls) {
            book++;
        } else {
            tp_split s = tp_kjv_book_split(book);
            uint8_t *dst = c->ids[s] + c->len[s];
            for (size_t i = ls; i <= le; i++)
                *dst++ = id_of[(uint8_t)text[i]];
            c->len[s] += le - ls + 1;
        }
        ls = le + 1;
    }
    for (uint32_t b = 0; b < TP_KJV_BOOKS; b++)
        c->books[tp_kjv_book_split(b)]++;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Options */

enum { KJ_PRE_LN = 0, KJ_POST_LN = 1 };

static const char *const norm_names[] = {"pre_ln", "post_ln", NULL};
static const char *const activation_names[] = {"gelu", "relu", "tanh", "silu", NULL};
static const tp_act activation_values[] = {TP_ACT_GELU, TP_ACT_RELU, TP_ACT_TANH, TP_ACT_SILU};

typedef struct kj_opts {
    const char *dir;   /* NULL: the default */
    const char *bible; /* the program prepare runs */
    int64_t context, eval_windows;
    int64_t width, depth, heads, mlp_dim, glu;
    int norm, act;
    double attention_temp;
} kj_opts;

static int parse_opts(const tp_wl_params *p, kj_opts *o, char *err, size_t errlen)
{
    *o = (kj_opts){
        .bible = KJ_BIBLE,
        .context = 64,
        .eval_windows = 256,
        .width = 128,
        .depth = 4,
        .heads = 4,
        .mlp_dim = 0,
        .glu = 0,
        .norm = KJ_PRE_LN,
        .act = 0,
        .attention_temp = 1.0,
    };
    const tp_opt_spec specs[] = {
        {"data.dir", TP_OPT_STRING, 0, 0, NULL, &o->dir},
        {"data.bible", TP_OPT_STRING, 0, 0, NULL, &o->bible},
        {"data.context", TP_OPT_INT, 1, KJ_MAX_CONTEXT, NULL, &o->context},
        {"data.eval_windows", TP_OPT_INT, 0, 1e9, NULL, &o->eval_windows},
        {"model.width", TP_OPT_INT, 1, KJ_MAX_WIDTH, NULL, &o->width},
        {"model.depth", TP_OPT_INT, 0, KJ_MAX_DEPTH, NULL, &o->depth},
        {"model.heads", TP_OPT_INT, 1, KJ_MAX_WIDTH, NULL, &o->heads},
        {"model.mlp_dim", TP_OPT_INT, 0, 4 * KJ_MAX_WIDTH, NULL, &o->mlp_dim},
        {"model.norm", TP_OPT_CHOICE, 0, 0, norm_names, &o->norm},
        {"model.attention_temp", TP_OPT_NUMBER, 1e-3, 1e3, NULL, &o->attention_temp},
        {"model.activation", TP_OPT_CHOICE, 0, 0, activation_names, &o->act},
        {"model.glu", TP_OPT_INT, 0, 1, NULL, &o->glu},
    };
    int rc = tp_wl_options_parse(p, KJ_NAME, specs, sizeof specs / sizeof specs[0], err, errlen);
    if (rc)
        return rc;
    if (o->width % o->heads) {
        char at[512];
        snprintf(err, errlen, "%s: %lld heads do not divide model.width %lld",
                 tp_wl_option_where(p, "model.heads", at, sizeof at), (long long)o->heads,
                 (long long)o->width);
        return TP_ECONFIG;
    }
    if (!o->mlp_dim)
        o->mlp_dim = 4 * o->width;
    return 0;
}

/* The data directory: data.dir ("~/" = $HOME), else $XDG_CACHE_HOME/trainperf/kjv, else
 * $HOME/.cache/trainperf/kjv. */
static int resolve_dir(const tp_wl_params *p, const kj_opts *o, char *dir, size_t len, char *err,
                       size_t errlen)
{
    char at[512];
    const char *home = getenv("HOME"), *xdg = getenv("XDG_CACHE_HOME");
    int n;
    if (o->dir && !strncmp(o->dir, "~/", 2)) {
        if (!home || home[0] != '/') {
            snprintf(err, errlen, "%s: \"%s\" starts with ~/ but $HOME is not set",
                     tp_wl_option_where(p, "data.dir", at, sizeof at), o->dir);
            return TP_ECONFIG;
        }
        n = snprintf(dir, len, "%s/%s", home, o->dir + 2);
    } else if (o->dir) {
        n = snprintf(dir, len, "%s", o->dir);
    } else if (xdg && xdg[0] == '/') {
        n = snprintf(dir, len, "%s/trainperf/kjv", xdg);
    } else if (home && home[0] == '/') {
        n = snprintf(dir, len, "%s/.cache/trainperf/kjv", home);
    } else {
        snprintf(err, errlen,
                 "%s: neither $XDG_CACHE_HOME nor $HOME is set, so there is no default "
                 "directory for the Bible text: set data.dir",
                 p->config_file ? p->config_file : KJ_NAME);
        return TP_ECONFIG;
    }
    if (n < 0 || (size_t)n + sizeof KJ_CACHE + 16 >= len || !dir[0]) {
        snprintf(err, errlen, "%s: the directory name is %s",
                 tp_wl_option_where(p, "data.dir", at, sizeof at), dir[0] ? "too long" : "empty");
        return TP_ECONFIG;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* prepare: run `bible`, normalise, write the cache atomically */

static int mkdir_p(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", dir);
    for (char *c = path + 1;; c++) {
        if (*c == '/' || *c == '\0') {
            char keep = *c;
            *c = '\0';
            if (mkdir(path, 0777) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "cannot create the directory %s: %s", path, strerror(errno));
                return TP_EIO;
            }
            *c = keep;
            if (!keep)
                break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is not a directory", dir);
        return TP_EIO;
    }
    return 0;
}

/* Run `bible KJ_RANGE`, its stdout into *out (malloc'd). */
static int run_bible(const char *prog, char **out, size_t *out_len, char *err, size_t errlen)
{
    *out = NULL;
    *out_len = 0;
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return TP_EIO;
    }
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC); /* dup2 onto stdout clears it in the child */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    char arg0[] = "bible", arg1[] = KJ_RANGE;
    char *argv[] = {arg0, arg1, NULL};
    pid_t pid;
    int e = posix_spawn(&pid, prog, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (e) {
        close(fds[0]);
        snprintf(err, errlen,
                 "cannot run %s: %s (is the Debian package " KJ_PACKAGE
                 " installed? apt-get install " KJ_PACKAGE ")",
                 prog, strerror(e));
        return TP_ENOENT;
    }
    buf b = {0};
    int rc = 0;
    for (;;) {
        if (b.cap - b.len < 65536) {
            size_t cap = b.cap ? 2 * b.cap : (size_t)8 << 20;
            char *np = cap <= KJ_MAX_RAW ? realloc(b.p, cap) : NULL;
            if (!np) {
                snprintf(err, errlen, "%s printed more than %zu MB, or memory ran out", prog,
                         KJ_MAX_RAW >> 20);
                rc = TP_EDATA;
                break;
            }
            b.p = np;
            b.cap = cap;
        }
        ssize_t r = read(fds[0], b.p + b.len, b.cap - b.len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "reading the output of %s: %s", prog, strerror(errno));
            rc = TP_EIO;
            break;
        }
        if (r == 0)
            break;
        b.len += (size_t)r;
    }
    close(fds[0]); /* on an early stop the child gets SIGPIPE and ends */
    int status;
    pid_t w;
    while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (!rc && w < 0) {
        snprintf(err, errlen, "waitpid(%s): %s", prog, strerror(errno));
        rc = TP_EIO;
    } else if (!rc && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
        if (WIFEXITED(status))
            snprintf(err, errlen, "%s " KJ_RANGE " exited with status %d", prog,
                     WEXITSTATUS(status));
        else
            snprintf(err, errlen, "%s " KJ_RANGE " was killed by signal %d (%s)", prog,
                     WTERMSIG(status), strsignal(WTERMSIG(status)));
        rc = TP_EIO;
    }
    if (rc) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    *out_len = b.len;
    return 0;
}

/* Write data to dir/name through a temporary file in dir: fsync, rename, fsync dir. */
static int write_atomic(const char *dir, const char *path, const char *data, size_t len, char *err,
                        size_t errlen)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/." KJ_CACHE ".XXXXXX", dir);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a file in %s: %s", dir, strerror(errno));
        return TP_EIO;
    }
    const char *what = NULL;
    for (size_t done = 0; done < len && !what;) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            what = "write";
        else
            done += (size_t)w;
    }
    if (!what && fchmod(fd, 0644) != 0)
        what = "fchmod";
    if (!what && fsync(fd) != 0)
        what = "fsync";
    if (close(fd) != 0 && !what)
        what = "close";
    if (!what && rename(tmp, path) != 0)
        what = "rename";
    if (what) {
        snprintf(err, errlen, "%s %s: %s", what, tmp, strerror(errno));
        unlink(tmp);
        return TP_EIO;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) { /* the rename made durable; a failure here loses nothing but durability */
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

static int kj_prepare(const tp_wl_params *p, char *err, size_t errlen)
{
    kj_opts o;
    char dir[PATH_MAX], path[PATH_MAX + 32], msg[1024];
    int rc = parse_opts(p, &o, err, errlen);
    if (rc || (rc = resolve_dir(p, &o, dir, sizeof dir, err, errlen)))
        return rc;
    snprintf(path, sizeof path, "%s/" KJ_CACHE, dir);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        return 0; /* done before; create() checks its contents */
    if (access(o.bible, X_OK) != 0) {
        char at[512];
        snprintf(err, errlen,
                 "%s: %s: %s; the King James Bible comes with the Debian package " KJ_PACKAGE
                 " (apt-get install " KJ_PACKAGE ")",
                 tp_wl_option_where(p, "data.bible", at, sizeof at), o.bible, strerror(errno));
        return TP_ENOENT;
    }
    if ((rc = mkdir_p(dir, msg, sizeof msg))) {
        snprintf(err, errlen, "kjv_lm prepare: %s (set data.dir to a writable directory)", msg);
        return rc;
    }
    char *raw = NULL, *text = NULL;
    size_t raw_len, text_len;
    uint32_t books;
    uint64_t verses;
    if ((rc = run_bible(o.bible, &raw, &raw_len, msg, sizeof msg))) {
        snprintf(err, errlen, "kjv_lm prepare: %s", msg);
        return rc;
    }
    rc = tp_kjv_normalize(raw, raw_len, &text, &text_len, &books, &verses, msg, sizeof msg);
    free(raw);
    if (rc) {
        snprintf(err, errlen, "kjv_lm prepare: the output of %s " KJ_RANGE ": %s", o.bible, msg);
        return rc;
    }
    if (books != TP_KJV_BOOKS) {
        snprintf(err, errlen,
                 "kjv_lm prepare: %s " KJ_RANGE " printed %u books, not %d (reinstall " KJ_PACKAGE
                 "?)",
                 o.bible, books, TP_KJV_BOOKS);
        free(text);
        return TP_EDATA;
    }
    rc = write_atomic(dir, path, text, text_len, msg, sizeof msg);
    free(text);
    if (rc)
        snprintf(err, errlen, "kjv_lm prepare: %s", msg);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* The workload */

/* Tensor indices of one block in the table. */
enum {
    KB_LN1_SCALE,
    KB_LN1_BIAS,
    KB_WQ,
    KB_WK,
    KB_WV,
    KB_WO,
    KB_LN2_SCALE,
    KB_LN2_BIAS,
    KB_W1,
    KB_B1,
    KB_W2,
    KB_B2,
};
_Static_assert(KB_B2 + 1 == KJ_PER_BLOCK, "KJ_PER_BLOCK counts a block's tensors");

typedef struct kjv {
    tp_workload base;
    uint32_t T, D, L, H, F, V;
    int norm, glu;
    tp_act act;
    float temp;
    tp_kjv_corpus corpus;
    uint64_t windows[3];   /* windows of T + 1 in each split */
    uint64_t evaluated[3]; /* windows evaluate() uses */
    /* Tensor table indices. */
    uint32_t t_tok, t_pos, t_block0, t_lnf_scale, t_lnf_bias, t_head_w, t_head_b;
    tp_tensor_info tensors[KJ_MAX_TENSORS];
    char names[KJ_MAX_TENSORS][32];
    tp_graph *g;
} kjv;

typedef struct chunk_args {
    const float *params;
    float *grad;        /* NULL: no gradient */
    int grad_overwrite; /* the first chunk overwrites grad, later ones add */
    tp_split split;
    const uint32_t *idx;  /* windows of the split, or NULL: evenly spread eval windows */
    uint64_t first;       /* with idx == NULL: the k of the first window */
    uint32_t n;           /* windows in this chunk */
    const float *weights; /* (n) or NULL */
    float scale;          /* the loss is scale * sum over tokens of w_window l_token */
    float smoothing;
    float dropout;
    uint64_t dropout_seed;
} chunk_args;

/* Window k of the m spread evenly over the n windows of split s. */
static uint64_t eval_window(const kjv *w, tp_split s, uint64_t k)
{
    uint64_t n = w->windows[s], m = w->evaluated[s];
    return m == n ? k : k * n / m; /* k < m <= n < 2^26 (the text is < 64 MB): no overflow */
}

static tp_tensor *param(tp_graph *g, const kjv *w, const chunk_args *a, uint32_t t)
{
    const tp_tensor_info *ti = &w->tensors[t];
    return tp_tensor_view(g, (float *)a->params + ti->offset, a->grad ? a->grad + ti->offset : NULL,
                          ti->ndim, ti->shape, a->grad_overwrite ? TP_TENSOR_GRAD_OVERWRITE : 0);
}

static tp_tensor *dropout(tp_graph *g, tp_tensor *x, const chunk_args *a, uint32_t *site)
{
    uint64_t s = ++*site;
    return a->dropout > 0.0f ? tp_dropout(g, x, a->dropout, tp_mix64(a->dropout_seed ^ tp_mix64(s)))
                             : x;
}

/* Causal self-attention of block l on h (n, T, D), output projection included. */
static tp_tensor *attention(tp_graph *g, const kjv *w, const chunk_args *a, uint32_t base,
                            tp_tensor *h)
{
    tp_tensor *q = tp_linear(g, h, param(g, w, a, base + KB_WQ), NULL, TP_ACT_NONE); /* (n,T,D) */
    tp_tensor *k = tp_linear(g, h, param(g, w, a, base + KB_WK), NULL, TP_ACT_NONE);
    tp_tensor *v = tp_linear(g, h, param(g, w, a, base + KB_WV), NULL, TP_ACT_NONE);
    tp_tensor *o = tp_attention(g, q, k, v, w->H, w->temp, 1); /* (n, T, D) */
    return tp_linear(g, o, param(g, w, a, base + KB_WO), NULL, TP_ACT_NONE);
}

/* The MLP of block l on h (n, T, D): dropout(act(h W1 + b1)) W2 + b2, or its GLU form. */
static tp_tensor *mlp(tp_graph *g, const kjv *w, const chunk_args *a, uint32_t base, tp_tensor *h,
                      uint32_t *site)
{
    tp_tensor *W1 = param(g, w, a, base + KB_W1), *b1 = param(g, w, a, base + KB_B1);
    tp_tensor *m;
    if (w->glu)
        m = tp_glu(g, tp_linear(g, h, W1, b1, TP_ACT_NONE), w->act); /* (n, T, 2F) -> (n, T, F) */
    else
        m = tp_linear(g, h, W1, b1, w->act); /* (n, T, F) */
    m = dropout(g, m, a, site);
    return tp_linear(g, m, param(g, w, a, base + KB_W2), param(g, w, a, base + KB_B2),
                     TP_ACT_NONE); /* (n, T, D) */
}

static tp_tensor *layernorm(tp_graph *g, const kjv *w, const chunk_args *a, uint32_t scale,
                            tp_tensor *x)
{
    return tp_layernorm(g, x, param(g, w, a, scale), param(g, w, a, scale + 1), KJ_LN_EPS);
}

/* Forward (and backward when a->grad) of one chunk; *per gets the (n T) per-token losses, valid
 * until the next chunk. */
static int run_chunk(kjv *w, const chunk_args *a, tp_tensor **per, char *err, size_t errlen)
{
    tp_graph *g = w->g;
    tp_graph_reset(g);
    const uint32_t T = w->T, D = w->D, n = a->n;
    const uint64_t ntok = (uint64_t)n * T;
    int32_t *ids = tp_graph_alloc(g, ntok * sizeof *ids);       /* (n T) */
    int32_t *labels = tp_graph_alloc(g, ntok * sizeof *labels); /* (n T) */
    float *tw = a->weights ? tp_graph_alloc(g, ntok * sizeof *tw) : NULL;
    if (ids && labels && (tw || !a->weights)) {
        const uint8_t *stream = w->corpus.ids[a->split];
        for (uint32_t i = 0; i < n; i++) {
            uint64_t win = a->idx ? a->idx[i] : eval_window(w, a->split, a->first + i);
            const uint8_t *src = stream + win * (T + 1);
            for (uint32_t t = 0; t < T; t++) {
                ids[(uint64_t)i * T + t] = src[t];
                labels[(uint64_t)i * T + t] = src[t + 1];
                if (tw)
                    tw[(uint64_t)i * T + t] = a->weights[i];
            }
        }
    }
    uint32_t site = 0;
    tp_tensor *x = tp_embedding(g, param(g, w, a, w->t_tok), ids, (uint32_t)ntok); /* (nT, D) */
    x = tp_reshape(g, x, 3, (uint32_t[]){n, T, D});                                /* (n,T,D) */
    x = tp_add(g, x, param(g, w, a, w->t_pos)); /* + (T, D) broadcast */
    x = dropout(g, x, a, &site);
    for (uint32_t l = 0; l < w->L; l++) {
        uint32_t base = w->t_block0 + l * KJ_PER_BLOCK;
        if (w->norm == KJ_PRE_LN) {
            tp_tensor *h = attention(g, w, a, base, layernorm(g, w, a, base + KB_LN1_SCALE, x));
            x = tp_add(g, x, dropout(g, h, a, &site));
            h = mlp(g, w, a, base, layernorm(g, w, a, base + KB_LN2_SCALE, x), &site);
            x = tp_add(g, x, dropout(g, h, a, &site));
        } else {
            tp_tensor *h = attention(g, w, a, base, x);
            x = layernorm(g, w, a, base + KB_LN1_SCALE, tp_add(g, x, dropout(g, h, a, &site)));
            h = mlp(g, w, a, base, x, &site);
            x = layernorm(g, w, a, base + KB_LN2_SCALE, tp_add(g, x, dropout(g, h, a, &site)));
        }
    }
    if (w->norm == KJ_PRE_LN)
        x = layernorm(g, w, a, w->t_lnf_scale, x);
    tp_tensor *logits = tp_linear(g, x, param(g, w, a, w->t_head_w), param(g, w, a, w->t_head_b),
                                  TP_ACT_NONE);                           /* (n, T, V) */
    tp_tensor *losses = tp_softmax_xent(g, logits, labels, a->smoothing); /* (n T) */
    int rc;
    if (a->grad) {
        tp_tensor *loss = tp_sum(g, losses, tw, a->scale); /* (1) */
        rc = tp_graph_backward(g, loss, err, errlen);
    } else {
        rc = tp_graph_status(g, err, errlen);
    }
    if (rc)
        return rc;
    *per = losses;
    return 0;
}

static uint32_t chunk_windows(const kjv *w)
{
    return w->T >= KJ_CHUNK_TOK ? 1 : KJ_CHUNK_TOK / w->T;
}

/* ---------------------------------------------------------------------------------------- */
/* The vtable */

static int kj_init_params(tp_workload *base, uint64_t seed, float *params, char *err, size_t errlen)
{
    kjv *w = (kjv *)base;
    if (!params) {
        snprintf(err, errlen, "kjv_lm.init_params: params is NULL");
        return TP_EINVAL;
    }
    for (uint32_t t = 0; t < w->base.num_tensors; t++) {
        const tp_tensor_info *ti = &w->tensors[t];
        float *p = params + ti->offset;
        tp_rng r;
        tp_rng_seed2(&r, seed, t);
        if (t == w->t_tok) {
            tp_fill_normal(p, ti->numel, 1.0f, &r);
        } else if (t == w->t_pos) {
            tp_fill_normal(p, ti->numel, 0.02f, &r);
        } else if (ti->role == TP_PARAM_ROLE_WEIGHT) {
            uint32_t fan_in = ti->shape[0], fan_out = ti->shape[1];
            if (w->glu && t >= w->t_block0 && t < w->t_block0 + w->L * KJ_PER_BLOCK &&
                (t - w->t_block0) % KJ_PER_BLOCK == KB_W1)
                fan_out /= 2; /* two (D, F) kernels side by side */
            tp_fill_uniform(p, ti->numel, sqrtf(6.0f / (float)(fan_in + fan_out)), &r);
        } else if (ti->role == TP_PARAM_ROLE_NORM_SCALE) {
            for (uint64_t i = 0; i < ti->numel; i++)
                p[i] = 1.0f;
        } else {
            memset(p, 0, ti->numel * sizeof(float));
        }
    }
    return 0;
}

static int read_opts(const tp_loss_opts *opts, float *smoothing, float *drop, const char *who,
                     char *err, size_t errlen)
{
    int eval_mode = 0;
    *smoothing = 0.0f;
    *drop = 0.0f;
    if (TP_FIELD_PRESENT(opts, tp_loss_opts, label_smoothing))
        *smoothing = opts->label_smoothing;
    if (TP_FIELD_PRESENT(opts, tp_loss_opts, dropout_rate))
        *drop = opts->dropout_rate;
    if (TP_FIELD_PRESENT(opts, tp_loss_opts, flags))
        eval_mode = (opts->flags & TP_LOSS_EVAL_MODE) != 0;
    if (!(*smoothing >= 0.0f && *smoothing < 1.0f) || !(*drop >= 0.0f && *drop < 1.0f)) {
        snprintf(err, errlen, "%s: label_smoothing %g and dropout_rate %g must both be in [0, 1)",
                 who, (double)*smoothing, (double)*drop);
        return TP_EINVAL;
    }
    if (eval_mode)
        *drop = 0.0f;
    return 0;
}

static int kj_loss_and_grad(tp_workload *base, const float *params, const uint32_t *idx,
                            const float *weights, uint32_t n, const tp_loss_opts *opts,
                            uint64_t dropout_seed, float *grad, double *loss, float *per_example,
                            char *err, size_t errlen)
{
    kjv *w = (kjv *)base;
    if (!params || !idx || n == 0) {
        snprintf(err, errlen, "kjv_lm.loss_and_grad: %s",
                 !params ? "params is NULL"
                 : !idx  ? "idx is NULL"
                         : "the batch is empty");
        return TP_EINVAL;
    }
    uint64_t size = w->base.split_size[TP_SPLIT_TRAIN];
    for (uint32_t i = 0; i < n; i++)
        if (idx[i] >= size) {
            snprintf(err, errlen,
                     "kjv_lm.loss_and_grad: index %u at batch position %u is out of range: the "
                     "training split has %llu windows",
                     idx[i], i, (unsigned long long)size);
            return TP_ERANGE;
        }
    float smoothing, drop;
    int rc = read_opts(opts, &smoothing, &drop, "kjv_lm.loss_and_grad", err, errlen);
    if (rc)
        return rc;
    const uint32_t cw = chunk_windows(w), T = w->T;
    double total = 0.0;
    for (uint32_t start = 0; start < n; start += cw) {
        uint32_t m = n - start < cw ? n - start : cw;
        chunk_args a = {
            .params = params,
            .grad = grad,
            .grad_overwrite = start == 0,
            .split = TP_SPLIT_TRAIN,
            .idx = idx + start,
            .n = m,
            .weights = weights ? weights + start : NULL,
            .scale = (float)(1.0 / ((double)n * T)),
            .smoothing = smoothing,
            .dropout = drop,
            .dropout_seed = tp_mix64(dropout_seed + start / cw),
        };
        tp_tensor *per;
        if ((rc = run_chunk(w, &a, &per, err, errlen)))
            return rc;
        for (uint32_t i = 0; i < m; i++) {
            double s = 0.0;
            for (uint32_t t = 0; t < T; t++)
                s += per->data[(uint64_t)i * T + t];
            s /= T;
            total += (weights ? (double)weights[start + i] : 1.0) * s;
            if (per_example)
                per_example[start + i] = (float)s;
        }
    }
    if (loss)
        *loss = total / n;
    return 0;
}

static int kj_evaluate(tp_workload *base, const float *params, tp_split split, tp_eval_result *out,
                       char *err, size_t errlen)
{
    kjv *w = (kjv *)base;
    if (!params || !out || (unsigned)split > TP_SPLIT_TEST) {
        snprintf(err, errlen, "kjv_lm.evaluate: %s",
                 !params ? "params is NULL"
                 : !out  ? "out is NULL"
                         : "no such split");
        return TP_EINVAL;
    }
    const uint64_t m = w->evaluated[split];
    const uint32_t cw = chunk_windows(w);
    double total = 0.0;
    for (uint64_t start = 0; start < m; start += cw) {
        uint32_t k = (uint32_t)(m - start < cw ? m - start : cw);
        chunk_args a = {.params = params, .split = split, .first = start, .n = k, .scale = 1.0f};
        tp_tensor *per;
        int rc = run_chunk(w, &a, &per, err, errlen);
        if (rc)
            return rc;
        for (uint64_t i = 0; i < per->numel; i++)
            total += per->data[i];
    }
    double chars = (double)m * w->T;
    out->metric = m ? total / chars : 0.0;
    out->loss = out->metric;
    out->examples = m;
    return 0;
}

static void kj_free(tp_workload *base)
{
    kjv *w = (kjv *)base;
    if (!w)
        return;
    tp_graph_free(w->g);
    tp_kjv_corpus_free(&w->corpus);
    free(w);
}

static const tp_workload_vtable kj_vtable = {
    .init_params = kj_init_params,
    .loss_and_grad = kj_loss_and_grad,
    .evaluate = kj_evaluate,
    .free = kj_free,
};

/* ---------------------------------------------------------------------------------------- */
/* Creation */

static int read_text(const tp_wl_params *p, const char *dir, char **out, size_t *len, char *err,
                     size_t errlen)
{
    char path[PATH_MAX + 32], at[512];
    snprintf(path, sizeof path, "%s/" KJ_CACHE, dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen,
                 "%s: %s: %s; this file is made by the workload's prepare step, which `trainperf "
                 "run` and `trainperf sweep` run before any worker starts (it runs `bible` from "
                 "the Debian package " KJ_PACKAGE ": apt-get install " KJ_PACKAGE ")",
                 tp_wl_option_where(p, "data.dir", at, sizeof at), path, strerror(e));
        return e == ENOENT ? TP_ENOENT : TP_EIO;
    }
    struct stat st;
    char *text = NULL;
    int rc = 0;
    if (fstat(fileno(f), &st) != 0 || st.st_size <= 0 || (uint64_t)st.st_size > KJ_MAX_RAW) {
        snprintf(err, errlen, "%s: %s, not the Bible text; delete it and run prepare again", path,
                 st.st_size <= 0 ? "empty" : "too large");
        rc = TP_EDATA;
    } else if (!(text = malloc((size_t)st.st_size))) {
        snprintf(err, errlen, "kjv_lm: out of memory reading %s", path);
        rc = TP_ENOMEM;
    } else if (fread(text, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        snprintf(err, errlen, "%s: read error", path);
        rc = TP_EIO;
    }
    fclose(f);
    if (rc) {
        free(text);
        return rc;
    }
    *out = text;
    *len = (size_t)st.st_size;
    return 0;
}

/* The tensor table for the options. */
static int layout(kjv *w, char *err, size_t errlen)
{
    tp_param_spec specs[KJ_MAX_TENSORS];
    uint32_t n = 0;
    const uint32_t D = w->D, F = w->F;
#define KJ_ADD(role_, nd, d0, d1, ...)                                                             \
    do {                                                                                           \
        snprintf(w->names[n], sizeof w->names[0], __VA_ARGS__);                                    \
        specs[n] = (tp_param_spec){w->names[n], role_, nd, {d0, d1, 1, 1}};                        \
        n++;                                                                                       \
    } while (0)
    w->t_tok = n;
    KJ_ADD(TP_PARAM_ROLE_EMBEDDING, 2, w->V, D, "tok_embedding");
    w->t_pos = n;
    KJ_ADD(TP_PARAM_ROLE_EMBEDDING, 2, w->T, D, "pos_embedding");
    w->t_block0 = n;
    for (uint32_t l = 0; l < w->L; l++) {
        KJ_ADD(TP_PARAM_ROLE_NORM_SCALE, 1, D, 1, "block%u.ln1.scale", l);
        KJ_ADD(TP_PARAM_ROLE_NORM_BIAS, 1, D, 1, "block%u.ln1.bias", l);
        KJ_ADD(TP_PARAM_ROLE_WEIGHT, 2, D, D, "block%u.attn.query", l);
        KJ_ADD(TP_PARAM_ROLE_WEIGHT, 2, D, D, "block%u.attn.key", l);
        KJ_ADD(TP_PARAM_ROLE_WEIGHT, 2, D, D, "block%u.attn.value", l);
        KJ_ADD(TP_PARAM_ROLE_WEIGHT, 2, D, D, "block%u.attn.out", l);
        KJ_ADD(TP_PARAM_ROLE_NORM_SCALE, 1, D, 1, "block%u.ln2.scale", l);
        KJ_ADD(TP_PARAM_ROLE_NORM_BIAS, 1, D, 1, "block%u.ln2.bias", l);
        KJ_ADD(TP_PARAM_ROLE_WEIGHT, 2, D, w->glu ? 2 * F : F, "block%u.mlp.fc1.weight", l);
        KJ_ADD(TP_PARAM_ROLE_BIAS, 1, w->glu ? 2 * F : F, 1, "block%u.mlp.fc1.bias", l);
        KJ_ADD(TP_PARAM_ROLE_WEIGHT, 2, F, D, "block%u.mlp.fc2.weight", l);
        KJ_ADD(TP_PARAM_ROLE_BIAS, 1, D, 1, "block%u.mlp.fc2.bias", l);
    }
    w->t_lnf_scale = w->t_lnf_bias = UINT32_MAX;
    if (w->norm == KJ_PRE_LN) {
        w->t_lnf_scale = n;
        KJ_ADD(TP_PARAM_ROLE_NORM_SCALE, 1, D, 1, "ln_f.scale");
        w->t_lnf_bias = n;
        KJ_ADD(TP_PARAM_ROLE_NORM_BIAS, 1, D, 1, "ln_f.bias");
    }
    w->t_head_w = n;
    KJ_ADD(TP_PARAM_ROLE_WEIGHT, 2, D, w->V, "head.weight");
    w->t_head_b = n;
    KJ_ADD(TP_PARAM_ROLE_BIAS, 1, w->V, 1, "head.bias");
#undef KJ_ADD
    w->base.num_tensors = n;
    w->base.tensors = w->tensors;
    return tp_params_layout(w->tensors, specs, n, &w->base.num_params, err, errlen);
}

static int kj_create(const tp_wl_params *p, tp_workload **out, char *err, size_t errlen)
{
    *out = NULL;
    kj_opts o;
    char dir[PATH_MAX], msg[1024];
    int rc = parse_opts(p, &o, err, errlen);
    if (rc || (rc = resolve_dir(p, &o, dir, sizeof dir, err, errlen)))
        return rc;
    char *text = NULL;
    size_t len = 0;
    if ((rc = read_text(p, dir, &text, &len, err, errlen)))
        return rc;
    kjv *w = calloc(1, sizeof *w);
    if (!w) {
        free(text);
        snprintf(err, errlen, "kjv_lm: out of memory");
        return TP_ENOMEM;
    }
    rc = tp_kjv_corpus_parse(text, len, &w->corpus, msg, sizeof msg);
    free(text);
    if (rc) {
        snprintf(err, errlen, "%s/" KJ_CACHE ": %s; delete it and run prepare again", dir, msg);
        kj_free(&w->base);
        return rc;
    }
    w->base.vt = &kj_vtable;
    w->base.name = KJ_NAME;
    w->base.metric = "loss";
    w->base.maximize = 0;
    w->T = (uint32_t)o.context;
    w->D = (uint32_t)o.width;
    w->L = (uint32_t)o.depth;
    w->H = (uint32_t)o.heads;
    w->F = (uint32_t)o.mlp_dim;
    w->V = w->corpus.vocab_size;
    w->norm = o.norm;
    w->glu = (int)o.glu;
    w->act = activation_values[o.act];
    w->temp = (float)o.attention_temp;
    static const char *const split_names[3] = {"train", "validation", "test"};
    for (int s = 0; s < 3; s++) {
        w->windows[s] = w->corpus.len[s] / (w->T + 1);
        if (!w->windows[s]) {
            char at[512];
            snprintf(err, errlen,
                     "%s: %lld: the %s split (%llu characters) has no window of context + 1 "
                     "characters",
                     tp_wl_option_where(p, "data.context", at, sizeof at), (long long)o.context,
                     split_names[s], (unsigned long long)w->corpus.len[s]);
            kj_free(&w->base);
            return TP_ECONFIG;
        }
        uint64_t m = (uint64_t)o.eval_windows;
        w->evaluated[s] = m && m < w->windows[s] ? m : w->windows[s];
        w->base.split_size[s] = s == TP_SPLIT_TRAIN ? w->windows[s] : w->evaluated[s];
    }
    if (w->windows[TP_SPLIT_TRAIN] > UINT32_MAX) {
        snprintf(err, errlen, "kjv_lm: %llu training windows do not fit 32-bit indices",
                 (unsigned long long)w->windows[TP_SPLIT_TRAIN]);
        kj_free(&w->base);
        return TP_ECONFIG;
    }
    if ((rc = layout(w, err, errlen)) ||
        (rc = tp_graph_init(&w->g, (size_t)64 << 20, err, errlen))) {
        kj_free(&w->base);
        return rc;
    }
    *out = &w->base;
    return 0;
}

const tp_workload_desc tp_kjv_lm_desc = {
    .name = KJ_NAME,
    .description = "char-level decoder Transformer (128 wide, 4 blocks) on the King James Bible "
                   "(AlgoPerf's wmt / LM analog)",
    .create = kj_create,
    .metric = "loss",
    .maximize = 0,
    .prepare = kj_prepare,
};
