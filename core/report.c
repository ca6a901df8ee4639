/*
 * report.c - the reports of report.h: the performance-profile plot (SVG and PNG), the plot of
 * one trial's (preconditioned) sharpness against its stability threshold (SVG and PNG), and the
 * self-contained HTML report with validation curves per workload and the sharpness plots.
 *
 * Plotting is PLplot's (axes, ticks, labels, legends, line styles); this file only decides
 * what to draw. How PLplot is kept safe inside a library:
 *   - global state: one process-wide mutex around every plot; each plot makes its own stream
 *     (plmkstrm), ends it (plend1) and restores the caller's current stream;
 *   - files: PLplot is handed a FILE that writes into memory (fopencookie), so it never opens,
 *     prompts for or half-writes a file; this file writes the bytes (temporary file + rename);
 *   - drivers: the device is looked up in PLplot's device list (plgDevs) before plinit, since
 *     plinit with an unknown device prompts on stdin; a missing device is TP_ENOTSUP naming the
 *     Debian package that provides it;
 *   - exit: PLplot's plexit() calls exit() after its handler returns, so the handler installed
 *     with plsexit longjmps back to the plot call, which ends the stream and returns an error
 *     (whatever PLplot allocated in the frames it unwinds is lost; this only happens when a
 *     driver cannot be loaded or memory runs out);
 *   - messages: recoverable PLplot errors go into a buffer (plsError) and become the returned
 *     error instead of lines on stderr (PLplot still prints warnings and driver-load failures
 *     to stderr itself).
 * PLplot's svg device writes text as numeric character references (&#x61;); they are turned
 * back into UTF-8 so the SVG is smaller and its text searchable. For the HTML the SVG loses its
 * XML prolog and namespace attributes (HTML5 puts <svg> in the SVG namespace by itself), so the
 * page references nothing outside itself.
 *
 * Not here: computing scores (core/score.c; the profile is drawn from the table's ratios),
 * measuring sharpness and the Edge of Stability pass rule (core/sharpness.c), command-line
 * options (core/cli.c).
 */
#define _GNU_SOURCE /* fopencookie, qsort_r */

#include "core/report.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <plplot/plplot.h>

#include "core/error.h"
#include "core/sharpness.h"
#include <trainperf/trainperf.h>

#ifndef TP_VERSION_STRING
#define TP_VERSION_STRING "unknown"
#endif

#define PROFILE_TAU_MAX  4.0 /* BENCHMARK.md §6: tau in [1, 4] */
#define PLOT_LABEL_CHARS 40  /* longer names are shortened in plots (tables show them whole) */

/* ---------------------------------------------------------------------------------------- */
/* A growing byte buffer; an allocation failure sticks and is reported once at the end. */

typedef struct rbuf {
    char *p;
    size_t len, cap;
    int oom;
} rbuf;

static void rb_put(rbuf *b, const void *data, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void rb_puts(rbuf *b, const char *s)
{
    rb_put(b, s, strlen(s));
}

static void rb_printf(rbuf *b, const char *fmt, ...) TP_PRINTF(2, 3);
static void rb_printf(rbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        rb_put(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    rb_put(b, big, (size_t)n);
    free(big);
}

/* Text as HTML (element content and quoted attribute values alike). */
static void rb_html(rbuf *b, const char *s)
{
    if (s == NULL)
        return;
    const char *run = s;
    for (; *s != '\0'; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            continue;
        }
        rb_put(b, run, (size_t)(s - run));
        rb_puts(b, rep);
        run = s + 1;
    }
    rb_put(b, run, (size_t)(s - run));
}

/* ---------------------------------------------------------------------------------------- */
/* Small helpers: UTF-8, numbers, files */

/* Length of the valid UTF-8 sequence at s, or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n;
    if (s[0] < 0x80)
        return 1;
    else if ((s[0] & 0xe0) == 0xc0 && s[0] >= 0xc2)
        n = 2;
    else if ((s[0] & 0xf0) == 0xe0)
        n = 3;
    else if ((s[0] & 0xf8) == 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* A user's string as PLplot text: '#' (PLplot's escape character) doubled, control characters
 * and invalid UTF-8 replaced, at most max_chars characters ("..." marks a cut). */
static void pl_text(char *dst, size_t cap, const char *src, size_t max_chars)
{
    size_t o = 0, chars = 0;
    const unsigned char *s = (const unsigned char *)(src != NULL ? src : "");
    while (*s != '\0') {
        if (chars == max_chars || o + 4 + 4 >= cap) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        size_t n = utf8_len(s);
        if (n == 0) {
            dst[o++] = '?';
            s++;
        } else if (n == 1 && (*s < 0x20 || *s == 0x7f)) {
            dst[o++] = ' ';
            s++;
        } else if (*s == '#') {
            dst[o++] = '#';
            dst[o++] = '#';
            s++;
        } else {
            memcpy(dst + o, s, n);
            o += n;
            s += n;
        }
        chars++;
    }
    dst[o] = '\0';
}

static void fmt_seconds(char *out, size_t n, double t)
{
    if (!isfinite(t))
        snprintf(out, n, "-");
    else if (fabs(t) < 10.0)
        snprintf(out, n, "%.2f s", t);
    else if (fabs(t) < 100000.0)
        snprintf(out, n, "%.1f s", t);
    else
        snprintf(out, n, "%.0f s", t);
}

static void fmt_number(char *out, size_t n, double v)
{
    if (isnan(v))
        snprintf(out, n, "-");
    else
        snprintf(out, n, "%.6g", v);
}

/* Write the file whole or not at all: a temporary file beside it, then rename. */
static int write_file(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
    int rc = TP_OK, created = 0;
    FILE *f = NULL;
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (tmp == NULL) {
        tp__errf(err, errlen, "%s: out of memory", path);
        return TP_ENOMEM;
    }
    snprintf(tmp, n, "%s.tmp%ld", path, (long)getpid());
    if ((f = fopen(tmp, "wb")) == NULL) {
        tp__errf(err, errlen, "cannot write %s: %s (does its directory exist and is it writable?)",
                 path, strerror(errno));
        rc = TP_EIO;
        goto error;
    }
    created = 1;
    if (len > 0 && fwrite(data, 1, len, f) != len) {
        tp__errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        rc = TP_EIO;
        goto error;
    }
    int closed = fclose(f);
    f = NULL;
    if (closed != 0) {
        tp__errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        rc = TP_EIO;
        goto error;
    }
    if (rename(tmp, path) != 0) {
        tp__errf(err, errlen, "cannot write %s: rename from %s: %s", path, tmp, strerror(errno));
        rc = TP_EIO;
        goto error;
    }
    free(tmp);
    return TP_OK;
error:
    if (f != NULL)
        fclose(f);
    if (created)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* PLplot: one plot at a time, into memory, never exiting */

/* Color map 0: background, foreground, grid, target line, then the series colors. */
enum { COL_BG = 0, COL_FG = 1, COL_GRID = 2, COL_TARGET = 3, COL_SERIES = 4, NUM_SERIES = 10 };
static const PLINT palette_r[] = {255, 0, 221, 90, 31, 214, 44, 255, 148, 140, 227, 23, 188, 64};
static const PLINT palette_g[] = {255, 0, 221, 90, 119, 39, 160, 127, 103, 86, 119, 190, 189, 64};
static const PLINT palette_b[] = {255, 0, 221, 90, 180, 40, 44, 14, 189, 75, 194, 207, 34, 64};
#define PALETTE_N ((PLINT)(sizeof palette_r / sizeof palette_r[0]))

static PLINT series_color(size_t i)
{
    return COL_SERIES + (PLINT)(i % NUM_SERIES);
}

static PLINT series_style(size_t i)
{
    return 1 + (PLINT)((i / NUM_SERIES) % 8); /* PLplot's eight built-in line styles */
}

typedef struct plot_sink {
    rbuf *out;
    int closed;
} plot_sink;

/* Everything a longjmp out of PLplot must still find lives here, not in locals. */
static struct {
    pthread_mutex_t lock;
    jmp_buf jump;
    int armed;
    char exit_msg[512];
    PLINT abort_code;
    char abort_msg[4096]; /* plabort sprintf()s into it: generously sized */
    PLINT stream;
    FILE *file;
    plot_sink sink;
} plot = {.lock = PTHREAD_MUTEX_INITIALIZER, .stream = -1};

static ssize_t sink_write(void *cookie, const char *data, size_t n)
{
    plot_sink *s = cookie;
    rb_put(s->out, data, n);
    return s->out->oom ? 0 : (ssize_t)n;
}

static int sink_close(void *cookie)
{
    ((plot_sink *)cookie)->closed = 1;
    return 0;
}

static int plot_exit_handler(const char *msg)
{
    snprintf(plot.exit_msg, sizeof plot.exit_msg, "%s", msg != NULL ? msg : "");
    if (plot.armed) {
        plot.armed = 0;
        longjmp(plot.jump, 1);
    }
    return 1; /* not ours: PLplot's default (it exits) */
}

static const char *device_package(const char *device)
{
    return strcmp(device, "svg") == 0 ? "libplplot17" : "plplot-driver-cairo";
}

/* Where PLplot was told to look for drivers, for error messages. */
static const char *drv_dir_note(char *buf, size_t n)
{
    const char *dir = getenv("PLPLOT_DRV_DIR");
    if (dir == NULL || dir[0] == '\0')
        return "";
    snprintf(buf, n, " (PLplot looked in PLPLOT_DRV_DIR=%s)", dir);
    return buf;
}

static int plot_has_device(const char *device)
{
    const char *menus[128], *names[128];
    const char **pm = menus, **pn = names;
    int n = 128;
    plgDevs(&pm, &pn, &n);
    for (int i = 0; i < n; i++)
        if (names[i] != NULL && strcmp(names[i], device) == 0)
            return 1;
    return 0;
}

typedef void (*plot_draw_fn)(void *ud);

static void trim_newlines(char *s)
{
    for (char *p = s; *p != '\0'; p++)
        if (*p == '\n')
            *p = ' ';
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == ' ')
        s[--n] = '\0';
    while (*s == ' ')
        memmove(s, s + 1, strlen(s));
}

/* Called with the lock held and the exit handler armed. */
static int plot_render_armed(const char *device, PLINT width, PLINT height, plot_draw_fn draw,
                             void *ud, char *err, size_t errlen)
{
    PLINT strm = -1;
    cookie_io_functions_t io = {
        .read = NULL, .write = sink_write, .seek = NULL, .close = sink_close};

    if (!plot_has_device(device)) {
        char note[600];
        tp__errf(err, errlen, "PLplot has no \"%s\" output device: install the Debian package %s%s",
                 device, device_package(device), drv_dir_note(note, sizeof note));
        return TP_ENOTSUP;
    }
    if ((plot.file = fopencookie(&plot.sink, "w", io)) == NULL) {
        tp__errf(err, errlen, "cannot draw a \"%s\" plot: out of memory", device);
        return TP_ENOMEM;
    }
    plmkstrm(&strm);
    if (strm < 0) {
        tp__errf(err, errlen, "cannot draw a \"%s\" plot: PLplot has no free stream", device);
        return TP_ESTATE;
    }
    plot.stream = strm;
    plsError(&plot.abort_code, plot.abort_msg);
    plsdev(device);
    plsfile(plot.file);
    plspage(0.0, 0.0, width, height, 0, 0);
    if (strcmp(device, "svg") == 0)
        plsetopt("drvopt", "text_clipping=0"); /* clip paths would need ids unique per page */
    plscmap0(palette_r, palette_g, palette_b, PALETTE_N);
    plinit();
    if (plot.abort_code == 0)
        draw(ud);
    plend1();
    plot.stream = -1;
    if (plot.abort_code != 0) {
        trim_newlines(plot.abort_msg);
        tp__errf(err, errlen, "PLplot failed to draw a \"%s\" plot: %s", device, plot.abort_msg);
        return TP_EIO;
    }
    return TP_OK;
}

/* Ending a stream PLplot gave up on may plexit() again: then the stream is abandoned. */
static void plot_end_broken_stream(void)
{
    PLINT s = plot.stream;
    plot.stream = -1;
    if (s < 0)
        return;
    if (setjmp(plot.jump) == 0) {
        plot.armed = 1;
        plsstrm(s);
        plend1();
    }
    plot.armed = 0;
}

/* plot_render_armed with the exit handler armed; nothing here lives across the longjmp. */
static int plot_render_guarded(const char *device, PLINT width, PLINT height, plot_draw_fn draw,
                               void *ud, char *err, size_t errlen)
{
    if (setjmp(plot.jump) != 0) {
        /* PLplot called plexit(): a driver that would not load, or no memory. */
        trim_newlines(plot.exit_msg);
        int driver = strstr(plot.exit_msg, "driver") != NULL;
        char note[600];
        tp__errf(err, errlen, "PLplot gave up on its \"%s\" device: %s%s%s%s", device,
                 plot.exit_msg, driver ? "; reinstall the Debian package " : "",
                 driver ? device_package(device) : "",
                 driver ? drv_dir_note(note, sizeof note) : "");
        plot_end_broken_stream();
        return driver ? TP_ENOTSUP : TP_EIO;
    }
    plot.armed = 1;
    int rc = plot_render_armed(device, width, height, draw, ud, err, errlen);
    plot.armed = 0;
    return rc;
}

/* Draw one page on a PLplot device; out receives the bytes the device wrote. */
static int plot_render(const char *device, PLINT width, PLINT height, plot_draw_fn draw, void *ud,
                       rbuf *out, char *err, size_t errlen)
{
    PLINT prev = 0;

    pthread_mutex_lock(&plot.lock);
    plgstrm(&prev);
    plot.stream = -1;
    plot.file = NULL;
    plot.sink = (plot_sink){.out = out, .closed = 0};
    plot.exit_msg[0] = '\0';
    plot.abort_code = 0;
    plot.abort_msg[0] = '\0';
    plsexit(plot_exit_handler);
    int rc = plot_render_guarded(device, width, height, draw, ud, err, errlen);
    plsexit(NULL);
    if (plot.file != NULL && !plot.sink.closed)
        fclose(plot.file);
    plot.file = NULL;
    plsstrm(prev);
    pthread_mutex_unlock(&plot.lock);

    if (rc == TP_OK && out->oom) {
        tp__errf(err, errlen, "cannot draw a \"%s\" plot: out of memory", device);
        rc = TP_ENOMEM;
    }
    return rc;
}

/* A series as lines through its runs of finite points (a NaN breaks the line), a lone finite
 * point as a marker. Called while drawing. */
static void plot_series(size_t n, const PLFLT *x, const PLFLT *y)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && !(isfinite(x[i]) && isfinite(y[i])))
            i++;
        size_t start = i;
        while (i < n && isfinite(x[i]) && isfinite(y[i]))
            i++;
        PLINT len = (PLINT)(i - start);
        if (len >= 2)
            plline(len, x + start, y + start);
        else if (len == 1)
            plpoin(1, x + start, y + start, 4);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* SVG as PLplot writes it, made readable and embeddable */

/* Decode numeric character references (&#x61; &#97;) into UTF-8, keeping XML's own escapes. */
static void svg_decode(rbuf *out, const char *s, size_t n)
{
    size_t i = 0, run = 0;
    while (i < n) {
        if (s[i] != '&' || i + 3 >= n || s[i + 1] != '#') {
            i++;
            continue;
        }
        size_t j = i + 2;
        int hex = (s[j] == 'x' || s[j] == 'X');
        if (hex)
            j++;
        unsigned long cp = 0;
        size_t digits = 0;
        while (j < n && digits < 8) {
            char c = s[j];
            int d = (c >= '0' && c <= '9')          ? c - '0'
                    : (hex && c >= 'a' && c <= 'f') ? c - 'a' + 10
                    : (hex && c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                    : -1;
            if (d < 0)
                break;
            cp = cp * (hex ? 16 : 10) + (unsigned long)d;
            digits++;
            j++;
        }
        /* Keep references that are not plain text characters as they are. */
        if (digits == 0 || j >= n || s[j] != ';' || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp < 0x20 && cp != '\t' && cp != '\n')) {
            i++;
            continue;
        }
        rb_put(out, s + run, i - run);
        char u[5];
        size_t un = 0;
        if (cp == '<')
            rb_puts(out, "&lt;");
        else if (cp == '>')
            rb_puts(out, "&gt;");
        else if (cp == '&')
            rb_puts(out, "&amp;");
        else if (cp == '"')
            rb_puts(out, "&quot;");
        else if (cp == '\'')
            rb_puts(out, "&#39;");
        else {
            if (cp < 0x80) {
                u[un++] = (char)cp;
            } else if (cp < 0x800) {
                u[un++] = (char)(0xc0 | (cp >> 6));
                u[un++] = (char)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                u[un++] = (char)(0xe0 | (cp >> 12));
                u[un++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                u[un++] = (char)(0x80 | (cp & 0x3f));
            } else {
                u[un++] = (char)(0xf0 | (cp >> 18));
                u[un++] = (char)(0x80 | ((cp >> 12) & 0x3f));
                u[un++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                u[un++] = (char)(0x80 | (cp & 0x3f));
            }
            rb_put(out, u, un);
        }
        i = j + 1;
        run = i;
    }
    rb_put(out, s + run, n - run);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The <svg> element of a (decoded) SVG document for inline use in HTML: no prolog, no
 * namespace declarations, no fixed size (the page's CSS sizes it), an accessible label. */
static int svg_inline(rbuf *out, const char *svg, size_t n, const char *label, char *err,
                      size_t errlen)
{
    const char *p = NULL;
    for (size_t i = 0; i + 5 <= n; i++)
        if (memcmp(svg + i, "<svg", 4) == 0 && is_space(svg[i + 4])) {
            p = svg + i + 4;
            break;
        }
    if (p == NULL) {
        tp__errf(err, errlen, "PLplot's svg device wrote no <svg> element");
        return TP_EIO;
    }
    const char *end = svg + n;
    rb_puts(out, "<svg class=\"plot\" role=\"img\" aria-label=\"");
    rb_html(out, label);
    rb_puts(out, "\"");
    for (;;) {
        while (p < end && is_space(*p))
            p++;
        if (p >= end)
            goto malformed;
        if (*p == '>') {
            p++;
            break;
        }
        const char *name = p;
        while (p < end && *p != '=' && *p != '>' && !is_space(*p))
            p++;
        size_t name_len = (size_t)(p - name);
        while (p < end && is_space(*p))
            p++;
        if (p >= end || *p != '=')
            goto malformed;
        p++;
        while (p < end && is_space(*p))
            p++;
        if (p >= end || (*p != '"' && *p != '\''))
            goto malformed;
        char quote = *p++;
        const char *value = p;
        while (p < end && *p != quote)
            p++;
        if (p >= end)
            goto malformed;
        size_t value_len = (size_t)(p - value);
        p++;
        if ((name_len == 7 && memcmp(name, "viewBox", 7) == 0) ||
            (name_len == 7 && memcmp(name, "version", 7) == 0)) {
            rb_puts(out, " ");
            rb_put(out, name, name_len);
            rb_puts(out, "=\"");
            rb_put(out, value, value_len);
            rb_puts(out, "\"");
        }
    }
    rb_puts(out, ">");
    /* PLplot indents every attribute on a line of its own: dropping the indentation saves a
     * fifth of the bytes. Text never spans lines (pl_text turns newlines into spaces). */
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl != NULL ? nl + 1 : end;
        rb_put(out, p, (size_t)(stop - p));
        p = stop;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
    }
    return TP_OK;
malformed:
    tp__errf(err, errlen, "PLplot's svg device wrote a malformed <svg> tag");
    return TP_EIO;
}

/* Render a page as SVG and decode its character references. */
static int render_svg(PLINT w, PLINT h, plot_draw_fn draw, void *ud, rbuf *svg, char *err,
                      size_t errlen)
{
    rbuf raw = {0};
    int rc = plot_render("svg", w, h, draw, ud, &raw, err, errlen);
    if (rc == TP_OK) {
        svg_decode(svg, raw.p != NULL ? raw.p : "", raw.len);
        if (svg->oom) {
            tp__errf(err, errlen, "cannot draw an svg plot: out of memory");
            rc = TP_ENOMEM;
        }
    }
    free(raw.p);
    return rc;
}

/* A figure as an SVG file and/or a PNG file (either path may be NULL). Both are drawn before
 * either is written: a missing driver leaves no file behind. */
static int render_files(PLINT w, PLINT h, plot_draw_fn draw, void *ud, const char *svg_path,
                        const char *png_path, char *err, size_t errlen)
{
    rbuf svg = {0}, png = {0};
    int rc = TP_OK;
    if (svg_path != NULL && (rc = render_svg(w, h, draw, ud, &svg, err, errlen)) != TP_OK)
        goto done;
    if (png_path != NULL &&
        (rc = plot_render("pngcairo", w, h, draw, ud, &png, err, errlen)) != TP_OK)
        goto done;
    if (svg_path != NULL && (rc = write_file(svg_path, svg.p, svg.len, err, errlen)) != TP_OK)
        goto done;
    if (png_path != NULL)
        rc = write_file(png_path, png.p, png.len, err, errlen);
done:
    free(svg.p);
    free(png.p);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Legends, allocated before drawing so that nothing of ours is lost if PLplot gives up */

#define LABEL_MAX (PLOT_LABEL_CHARS * 8 + 64)

typedef struct legend {
    PLINT n, cap;
    PLINT *opt, *text_color, *line_color, *line_style; /* (cap) */
    PLFLT *line_width;                                 /* (cap) */
    const char **text;                                 /* (cap) pointers into label */
    char (*label)[LABEL_MAX];                          /* (cap) PLplot text */
} legend;

static void legend_free(legend *l)
{
    free(l->opt);
    free(l->text_color);
    free(l->line_color);
    free(l->line_style);
    free(l->line_width);
    free(l->text);
    free(l->label);
    memset(l, 0, sizeof *l);
}

static int legend_init(legend *l, size_t cap)
{
    memset(l, 0, sizeof *l);
    cap = cap > 0 ? cap : 1;
    l->cap = (PLINT)cap;
    l->opt = calloc(cap, sizeof *l->opt);
    l->text_color = calloc(cap, sizeof *l->text_color);
    l->line_color = calloc(cap, sizeof *l->line_color);
    l->line_style = calloc(cap, sizeof *l->line_style);
    l->line_width = calloc(cap, sizeof *l->line_width);
    l->text = calloc(cap, sizeof *l->text);
    l->label = calloc(cap, sizeof *l->label);
    if (l->opt == NULL || l->text_color == NULL || l->line_color == NULL || l->line_style == NULL ||
        l->line_width == NULL || l->text == NULL || l->label == NULL) {
        legend_free(l);
        return TP_ENOMEM;
    }
    return TP_OK;
}

/* Add a line entry; returns its label buffer (LABEL_MAX bytes) for the caller to fill. */
static char *legend_add(legend *l, PLINT color, PLINT style, PLFLT width)
{
    assert(l->n < l->cap && "legend_init was given too small a capacity");
    PLINT i = l->n++;
    l->opt[i] = PL_LEGEND_LINE;
    l->text_color[i] = COL_FG;
    l->line_color[i] = color;
    l->line_style[i] = style;
    l->line_width[i] = width;
    l->text[i] = l->label[i];
    l->label[i][0] = '\0';
    return l->label[i];
}

/* Inside the plot's corner (PL_POSITION_BOTTOM or PL_POSITION_TOP), on the right. */
static void legend_draw(const legend *l, PLINT vertical)
{
    PLFLT w, h;
    if (l->n == 0)
        return;
    pllegend(&w, &h, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
             PL_POSITION_INSIDE | PL_POSITION_RIGHT | vertical, 0.02, 0.03, 0.08, COL_BG, COL_FG, 1,
             0, 0, l->n, l->opt, 1.0, 0.8, 2.0, 0.0, l->text_color, l->text, NULL, NULL, NULL, NULL,
             l->line_color, l->line_style, l->line_width, NULL, NULL, NULL, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* The performance-profile plot */

#define PROFILE_W 960
#define PROFILE_H 640

/* Submission s is series s: the HTML report puts the score table's submissions first. */
typedef struct profile_plot {
    size_t n; /* submissions */
    size_t workloads;
    size_t cap;   /* 2 * workloads + 2 points per curve */
    PLFLT *x, *y; /* (n, cap) step curves */
    PLINT *len;   /* (n) points per curve */
    legend key;
} profile_plot;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void profile_free(profile_plot *p)
{
    free(p->x);
    free(p->y);
    free(p->len);
    legend_free(&p->key);
    memset(p, 0, sizeof *p);
}

/* Step curves of rho_s(tau) = |{w : r(s, w) <= tau}| / n on [1, 4] from the table's ratios:
 * from (1, rho(1)) a horizontal run to each distinct ratio, a vertical step there, and a
 * horizontal run to tau = 4. */
static int profile_build(const tp_score_table *t, profile_plot *p, char *err, size_t errlen)
{
    size_t S = t->num_submissions, W = t->num_workloads;
    memset(p, 0, sizeof *p);
    p->n = S;
    p->workloads = W;
    p->cap = 2 * W + 2;
    p->x = malloc(S * p->cap * sizeof *p->x);
    p->y = malloc(S * p->cap * sizeof *p->y);
    p->len = calloc(S, sizeof *p->len);
    double *r = malloc(W * sizeof *r);
    if (p->x == NULL || p->y == NULL || p->len == NULL || r == NULL ||
        legend_init(&p->key, S) != TP_OK) {
        free(r);
        profile_free(p);
        tp__errf(err, errlen, "cannot draw the performance profile: out of memory");
        return TP_ENOMEM;
    }
    for (size_t s = 0; s < S; s++) {
        size_t m = 0;
        for (size_t w = 0; w < W; w++) {
            double v = t->ratio[s * W + w];
            if (isfinite(v) && v <= PROFILE_TAU_MAX)
                r[m++] = v < 1.0 ? 1.0 : v;
        }
        qsort(r, m, sizeof *r, cmp_double);
        PLFLT *x = p->x + s * p->cap, *y = p->y + s * p->cap;
        PLINT k = 0;
        size_t i = 0;
        while (i < m && r[i] <= 1.0)
            i++;
        double rho = (double)i / (double)W;
        x[k] = 1.0;
        y[k++] = rho;
        while (i < m) {
            double tau = r[i];
            while (i < m && r[i] <= tau)
                i++;
            x[k] = tau;
            y[k++] = rho;
            rho = (double)i / (double)W;
            x[k] = tau;
            y[k++] = rho;
        }
        x[k] = PROFILE_TAU_MAX;
        y[k++] = rho;
        p->len[s] = k;

        char name[LABEL_MAX - 32];
        pl_text(name, sizeof name, t->submissions[s], PLOT_LABEL_CHARS);
        char *label = legend_add(&p->key, series_color(s), series_style(s), 2.0);
        double sc = t->score != NULL ? t->score[s] : NAN;
        if (isfinite(sc))
            snprintf(label, LABEL_MAX, "%s (score %.4f)", name, sc);
        else
            snprintf(label, LABEL_MAX, "%s (no score)", name);
    }
    free(r);
    return TP_OK;
}

static void draw_profile(void *ud)
{
    const profile_plot *p = ud;
    char title[96];
    snprintf(title, sizeof title, "Performance profiles over %zu workload%s", p->workloads,
             p->workloads == 1 ? "" : "s");

    pladv(0);
    plvpor(0.11, 0.97, 0.11, 0.91);
    plwind(1.0, PROFILE_TAU_MAX, 0.0, 1.04);
    plwidth(1.0);
    plcol0(COL_GRID);
    plbox("g", 0.5, 0, "g", 0.2, 0);
    plcol0(COL_FG);
    plbox("bcnst", 0.5, 5, "bcnstv", 0.2, 2);
    pllab("tau (ratio to fastest)", "fraction of workloads", title);

    for (size_t s = 0; s < p->n; s++) {
        plcol0(series_color(s));
        pllsty(series_style(s));
        plwidth(2.0);
        plline(p->len[s], p->x + s * p->cap, p->y + s * p->cap);
    }
    pllsty(1);
    plwidth(1.0);
    legend_draw(&p->key, PL_POSITION_BOTTOM);
}

int tp_report_profile(const tp_score_table *score, const char *svg_path, const char *png_path,
                      char *err, size_t errlen)
{
    profile_plot p;
    int rc;

    if (score == NULL || (svg_path == NULL && png_path == NULL)) {
        tp__errf(err, errlen,
                 "tp_report_profile: a score table and an svg or png path are "
                 "required");
        return TP_EINVAL;
    }
    if (score->num_submissions == 0 || score->num_workloads == 0) {
        tp__errf(err, errlen,
                 "no performance profile to draw: the score table has %zu "
                 "submissions and %zu workloads",
                 score->num_submissions, score->num_workloads);
        return TP_EINVAL;
    }
    if ((rc = profile_build(score, &p, err, errlen)) != TP_OK)
        return rc;
    rc = render_files(PROFILE_W, PROFILE_H, draw_profile, &p, svg_path, png_path, err, errlen);
    profile_free(&p);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Trials and their evals, read once from the store */

typedef struct rtrial {
    int64_t id;
    char *submission, *workload, *variant, *optimizer, *metric, *message;
    int study, trial_index, reason, maximize;
    tp_trial_status status;
    uint64_t steps;
    double time_to_target, best, target;
    size_t n, cap; /* evals */
    double *x;     /* (n) submission time (the eval's score) */
    double *y;     /* (n) validation metric */
    size_t color;  /* series index of the submission */
} rtrial;

typedef struct rdata {
    rtrial *t;
    size_t n, cap;
    char **subs; /* series order: the score table's submissions, then the others sorted */
    size_t nsubs;
    int oom;
} rdata;

static char *dup_or_empty(const char *s)
{
    return strdup(s != NULL ? s : "");
}

static int collect_trial(const tp_trial_summary *s, void *ud)
{
    rdata *d = ud;
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 16;
        rtrial *t = realloc(d->t, cap * sizeof *t);
        if (t == NULL) {
            d->oom = 1;
            return 1;
        }
        d->t = t;
        d->cap = cap;
    }
    rtrial *t = &d->t[d->n];
    memset(t, 0, sizeof *t);
    t->id = s->id;
    t->study = s->study;
    t->trial_index = s->trial_index;
    t->reason = s->reason;
    t->maximize = s->maximize;
    t->status = s->status;
    t->steps = s->steps;
    t->time_to_target = s->time_to_target;
    t->best = s->best_validation_metric;
    t->target = s->validation_target;
    t->submission = dup_or_empty(s->submission);
    t->workload = dup_or_empty(s->workload);
    t->variant = dup_or_empty(s->variant);
    t->optimizer = dup_or_empty(s->optimizer);
    t->metric = dup_or_empty(s->metric);
    t->message = dup_or_empty(s->message);
    d->n++;
    if (t->submission == NULL || t->workload == NULL || t->variant == NULL ||
        t->optimizer == NULL || t->metric == NULL || t->message == NULL) {
        d->oom = 1;
        return 1;
    }
    return 0;
}

static int collect_eval(const tp_eval_row *e, void *ud)
{
    rtrial *t = ud;
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 32;
        double *x = realloc(t->x, cap * sizeof *x);
        if (x == NULL)
            return 1;
        t->x = x;
        double *y = realloc(t->y, cap * sizeof *y);
        if (y == NULL)
            return 1;
        t->y = y;
        t->cap = cap;
    }
    t->x[t->n] = e->score;
    t->y[t->n] = e->validation_metric;
    t->n++;
    return 0;
}

static void rdata_free(rdata *d)
{
    for (size_t i = 0; i < d->n; i++) {
        rtrial *t = &d->t[i];
        free(t->submission);
        free(t->workload);
        free(t->variant);
        free(t->optimizer);
        free(t->metric);
        free(t->message);
        free(t->x);
        free(t->y);
    }
    free(d->t);
    free(d->subs); /* the names belong to the trials or to the score table */
    memset(d, 0, sizeof *d);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int sub_index(const rdata *d, const char *name, size_t *out)
{
    for (size_t i = 0; i < d->nsubs; i++)
        if (strcmp(d->subs[i], name) == 0) {
            *out = i;
            return 1;
        }
    return 0;
}

static int rdata_load(tp_results *db, const tp_score_table *score, rdata *d, char *err,
                      size_t errlen)
{
    int rc;
    memset(d, 0, sizeof *d);
    rc = tp_results_foreach_trial(db, NULL, 0, collect_trial, d, err, errlen);
    if (d->oom)
        goto oom;
    if (rc != TP_OK)
        return rc;
    for (size_t i = 0; i < d->n; i++) {
        rc = tp_results_foreach_eval(db, d->t[i].id, collect_eval, &d->t[i], err, errlen);
        if (rc == 1)
            goto oom;
        if (rc != TP_OK)
            return rc;
    }
    size_t ns = score != NULL ? score->num_submissions : 0;
    if ((d->subs = malloc((ns + d->n + 1) * sizeof *d->subs)) == NULL)
        goto oom;
    for (size_t s = 0; s < ns; s++)
        d->subs[d->nsubs++] = score->submissions[s];
    size_t first_extra = d->nsubs, idx;
    for (size_t i = 0; i < d->n; i++)
        if (!sub_index(d, d->t[i].submission, &idx))
            d->subs[d->nsubs++] = d->t[i].submission;
    qsort(d->subs + first_extra, d->nsubs - first_extra, sizeof *d->subs, cmp_str);
    for (size_t i = 0; i < d->n; i++)
        if (sub_index(d, d->t[i].submission, &idx))
            d->t[i].color = idx;
    return TP_OK;
oom:
    tp__errf(err, errlen, "%s: out of memory reading trials", tp_results_path(db));
    return TP_ENOMEM;
}

/* ---------------------------------------------------------------------------------------- */
/* Validation curves of one workload (and variant) */

#define CURVES_W    880
#define CURVES_H    520
#define MAX_TARGETS 4

typedef struct curves_plot {
    const rdata *d;
    const size_t *trials; /* (n) indices into d->t */
    size_t n;
    char title[LABEL_MAX * 2];
    char ylabel[LABEL_MAX];
    double targets[MAX_TARGETS];
    size_t ntargets;
    double xmax, ymin, ymax;
    int maximize; /* curves rise: the legend goes bottom right, else top right */
    legend key;   /* the submissions with a trial here, then the targets */
} curves_plot;

static void draw_curves(void *ud)
{
    const curves_plot *c = ud;
    const rdata *d = c->d;

    pladv(0);
    plvpor(0.10, 0.97, 0.11, 0.91);
    plwind(0.0, c->xmax, c->ymin, c->ymax);
    plwidth(1.0);
    plcol0(COL_GRID);
    plbox("g", 0, 0, "g", 0, 0);
    plcol0(COL_FG);
    plbox("bcnst", 0, 0, "bcnstv", 0, 0);
    pllab("submission time (s)", c->ylabel, c->title);

    for (size_t k = 0; k < c->ntargets; k++) {
        PLFLT x[2] = {0.0, c->xmax}, y[2] = {c->targets[k], c->targets[k]};
        plcol0(COL_TARGET);
        pllsty(2);
        plwidth(1.5);
        plline(2, x, y);
    }
    pllsty(1);
    for (size_t k = 0; k < c->n; k++) {
        const rtrial *t = &d->t[c->trials[k]];
        plcol0(series_color(t->color));
        plwidth(1.5);
        plot_series(t->n, t->x, t->y); /* a diverged eval breaks the curve */
    }
    plwidth(1.0);

    legend_draw(&c->key, c->maximize ? PL_POSITION_BOTTOM : PL_POSITION_TOP);
}

/* The legend: the submissions with a trial here (c->key has room for all and the targets). */
static void curves_legend(curves_plot *c)
{
    const rdata *d = c->d;
    c->key.n = 0;
    for (size_t s = 0; s < d->nsubs; s++) {
        int present = 0;
        for (size_t k = 0; k < c->n && !present; k++)
            present = d->t[c->trials[k]].color == s;
        if (present)
            pl_text(legend_add(&c->key, series_color(s), 1, 1.5), LABEL_MAX, d->subs[s],
                    PLOT_LABEL_CHARS);
    }
    for (size_t k = 0; k < c->ntargets; k++)
        snprintf(legend_add(&c->key, COL_TARGET, 2, 1.5), LABEL_MAX, "target %.6g", c->targets[k]);
}

/* Axis ranges that hold every finite point and target; 0 when there is no point at all. */
static int curves_ranges(curves_plot *c)
{
    const rdata *d = c->d;
    double xmax = 0.0, ymin = INFINITY, ymax = -INFINITY;
    size_t points = 0;
    for (size_t k = 0; k < c->n; k++) {
        const rtrial *t = &d->t[c->trials[k]];
        for (size_t i = 0; i < t->n; i++) {
            if (!isfinite(t->x[i]) || !isfinite(t->y[i]))
                continue;
            points++;
            xmax = fmax(xmax, t->x[i]);
            ymin = fmin(ymin, t->y[i]);
            ymax = fmax(ymax, t->y[i]);
        }
    }
    if (points == 0)
        return 0;
    for (size_t k = 0; k < c->ntargets; k++) {
        ymin = fmin(ymin, c->targets[k]);
        ymax = fmax(ymax, c->targets[k]);
    }
    if (!(xmax > 0.0))
        xmax = 1.0;
    double pad = (ymax - ymin) * 0.05;
    if (!(pad > 0.0))
        pad = fabs(ymax) > 0.0 ? fabs(ymax) * 0.05 : 0.5;
    c->xmax = xmax * 1.02;
    c->ymin = ymin - pad;
    c->ymax = ymax + pad;
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* One trial's (preconditioned) sharpness against its stability threshold (BENCHMARK.md §9) */

#define SHARP_W        880
#define SHARP_H        520
#define SHARP_WINDOW   1.5   /* with a threshold known the y axis ends at 1.5x the largest */
#define SHARP_LOG_SPAN 100.0 /* a log y axis when what is shown spans more than two decades */
#define SHARP_HTML_MAX 24    /* trials with a sharpness plot in the HTML report */

enum { SHARP_PRE = 0, SHARP_PLAIN = 1, SHARP_THR = 2, SHARP_NSERIES = 3 };

typedef struct sharp_rows {
    tp_sharpness_row *r; /* (n) in step order */
    size_t n, cap;
} sharp_rows;

static int collect_sharpness(const tp_sharpness_row *m, void *ud)
{
    sharp_rows *s = ud;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        tp_sharpness_row *r = realloc(s->r, cap * sizeof *r);
        if (r == NULL)
            return 1;
        s->r = r;
        s->cap = cap;
    }
    s->r[s->n++] = *m;
    return 0;
}

/* A trial's measurements into s (whatever s held is dropped; its buffer is reused). */
static int sharp_load(tp_results *db, int64_t id, sharp_rows *s, char *err, size_t errlen)
{
    s->n = 0;
    int rc = tp_results_foreach_sharpness(db, id, collect_sharpness, s, err, errlen);
    if (rc == 1) {
        tp__errf(err, errlen, "%s: out of memory reading the sharpness of trial %lld",
                 tp_results_path(db), (long long)id);
        return TP_ENOMEM;
    }
    return rc;
}

/* The kind of the last measurement with a threshold (0: none known). */
static int sharp_kind(const sharp_rows *s)
{
    int kind = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->r[i].threshold_kind != 0 && isfinite(s->r[i].threshold))
            kind = s->r[i].threshold_kind;
    return kind;
}

typedef struct sharp_plot {
    size_t n;
    size_t values;            /* finite measured values (not thresholds) */
    PLFLT *x;                 /* (n) step; owns the y arrays too */
    PLFLT *y[SHARP_NSERIES];  /* (3, n) on the axis' scale (log10 on a log axis), NaN: none */
    int shown[SHARP_NSERIES]; /* the series has a point */
    int logy;
    double xmax, ymin, ymax; /* axis ranges on the axis' scale */
    char title[LABEL_MAX * 2];
    char ylabel[64];
    char note[160]; /* what is off the axis */
    legend key;
} sharp_plot;

static void sharp_free(sharp_plot *p)
{
    free(p->x);
    legend_free(&p->key);
    memset(p, 0, sizeof *p);
}

/* "Sharpness of trial 3: fmnist_mlp (variant), adamw" as PLplot text. */
static void sharp_title(char *out, size_t n, int64_t id, const char *workload, const char *variant,
                        const char *optimizer)
{
    char wl[LABEL_MAX], var[LABEL_MAX], opt[LABEL_MAX];
    pl_text(wl, sizeof wl, workload, PLOT_LABEL_CHARS);
    pl_text(var, sizeof var, variant, PLOT_LABEL_CHARS);
    pl_text(opt, sizeof opt, optimizer, PLOT_LABEL_CHARS);
    snprintf(out, n, "Sharpness of trial %lld: %s%s%s%s, %s", (long long)id, wl,
             var[0] != '\0' ? " (" : "", var, var[0] != '\0' ? ")" : "", opt);
}

/* The threshold's legend entry: "threshold 38/η" when threshold x lr is the same constant at
 * every measurement (up to decoupled weight decay's small share), else just "threshold"; and
 * which series it bounds when both are drawn. */
static void sharp_threshold_label(const sharp_rows *s, int both, char *out, size_t n)
{
    double c = NAN;
    int constant = 1;
    for (size_t i = 0; i < s->n && constant; i++) {
        const tp_sharpness_row *r = &s->r[i];
        if (!(isfinite(r->threshold) && r->threshold > 0 && isfinite(r->lr) && r->lr > 0))
            continue;
        double ci = r->threshold * r->lr;
        if (isnan(c))
            c = ci;
        else if (fabs(ci - c) > 5e-3 * fabs(c))
            constant = 0;
    }
    int kind = sharp_kind(s);
    const char *of = !both ? "" : kind == 2 ? " (preconditioned)" : kind == 1 ? " (plain)" : "";
    if (constant && !isnan(c))
        snprintf(out, n, "threshold %.3g/η%s", c, of);
    else
        snprintf(out, n, "threshold%s", of);
}

/* The plot of a trial's measurements. The y axis: with a threshold known, linear from 0 to 1.5x
 * the largest threshold, the window Edge of Stability plots show (a preconditioned sharpness
 * right after the first updates can be orders of magnitude above the threshold, and would
 * flatten everything else); the values above it are cut off and counted in a note. When a
 * quarter or more of the values are above that window (a trial far from stability) or no
 * threshold is known, the axis holds every value. Either way it is logarithmic when the main
 * series (preconditioned sharpness when measured) and the threshold span more than two decades
 * within the axis; a value <= 0 is then left out and counted too. p->values == 0 when there is
 * nothing to draw. */
static int sharp_build(const sharp_rows *s, const char *title, sharp_plot *p, char *err,
                       size_t errlen)
{
    size_t n = s->n;
    memset(p, 0, sizeof *p);
    p->n = n;
    p->x = malloc((n > 0 ? n : 1) * (SHARP_NSERIES + 1) * sizeof *p->x);
    if (p->x == NULL || legend_init(&p->key, SHARP_NSERIES) != TP_OK) {
        sharp_free(p);
        tp__errf(err, errlen, "cannot draw the sharpness plot: out of memory");
        return TP_ENOMEM;
    }
    for (int k = 0; k < SHARP_NSERIES; k++)
        p->y[k] = p->x + (size_t)(k + 1) * n;
    snprintf(p->title, sizeof p->title, "%s", title);

    /* Raw values first (thresholds <= 0 mean nothing), and what they span. */
    double xmax = 0.0, vmax = -INFINITY, thrmax = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        const tp_sharpness_row *r = &s->r[i];
        p->x[i] = (PLFLT)r->step;
        xmax = fmax(xmax, p->x[i]);
        p->y[SHARP_PRE][i] = isfinite(r->precond_sharpness) ? r->precond_sharpness : NAN;
        p->y[SHARP_PLAIN][i] = isfinite(r->sharpness) ? r->sharpness : NAN;
        p->y[SHARP_THR][i] = isfinite(r->threshold) && r->threshold > 0 ? r->threshold : NAN;
        for (int k = 0; k < SHARP_NSERIES; k++) {
            double v = p->y[k][i];
            if (isnan(v))
                continue;
            p->shown[k] = 1;
            if (k == SHARP_THR) {
                thrmax = fmax(thrmax, v);
            } else {
                vmax = fmax(vmax, v);
                p->values++;
            }
        }
    }
    if (p->values == 0)
        return TP_OK;

    double top = vmax;
    int window = 0;
    if (thrmax > 0) {
        size_t above = 0;
        for (size_t i = 0; i < n; i++)
            for (int k = SHARP_PRE; k <= SHARP_PLAIN; k++)
                above += p->y[k][i] > SHARP_WINDOW * thrmax;
        window = 4 * above < p->values; /* a few early values: cut off */
        top = window ? SHARP_WINDOW * thrmax : fmax(vmax, thrmax);
    }
    /* The span that decides the scale is that of the series the threshold bounds (the
     * preconditioned one when measured) and the threshold: plain sharpness under Adam sits
     * orders of magnitude below and would put every Adam plot on a log axis, where the 1.0-1.2x
     * around the threshold that the plot is about is hard to see. */
    int primary = p->shown[SHARP_PRE] ? SHARP_PRE : SHARP_PLAIN;
    double lo = INFINITY, lo_all = INFINITY, vmin = INFINITY;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < SHARP_NSERIES; k++) {
            double v = p->y[k][i];
            if (isnan(v) || v > top)
                continue;
            vmin = fmin(vmin, v);
            if (v > 0 && (k == primary || k == SHARP_THR))
                lo = fmin(lo, v);
            if (v > 0)
                lo_all = fmin(lo_all, v);
        }
    p->logy = isfinite(lo) && top / lo > SHARP_LOG_SPAN;

    size_t hidden_low = 0; /* values <= 0 on a log axis */
    if (p->logy) {
        for (size_t i = 0; i < n; i++)
            for (int k = 0; k < SHARP_NSERIES; k++) {
                double v = p->y[k][i];
                if (isnan(v))
                    continue;
                if (v <= 0 && k != SHARP_THR)
                    hidden_low++;
                p->y[k][i] = v > 0 ? log10(v) : NAN;
            }
        double a = log10(lo_all), b = log10(top), range = b - a;
        p->ymin = a - 0.05 * range;
        p->ymax = b + (window ? 0.0 : 0.05 * range); /* the legend goes bottom right */
    } else {
        p->ymin = fmin(0.0, vmin);
        if (p->ymin < 0)
            p->ymin -= 0.05 * (top - p->ymin);
        p->ymax = window ? top : top + 0.25 * (top - p->ymin);
        if (!(p->ymax > p->ymin))
            p->ymax = p->ymin + 1.0;
    }
    p->xmax = xmax > 0 ? xmax * 1.02 : 1.0;

    size_t hidden_high = 0;
    for (size_t i = 0; i < n; i++)
        for (int k = SHARP_PRE; k <= SHARP_PLAIN; k++)
            hidden_high += p->y[k][i] > p->ymax;
    if (hidden_high > 0 && hidden_low > 0)
        snprintf(p->note, sizeof p->note,
                 "not shown: %zu value%s above %.3g× the largest threshold, %zu value%s <= 0",
                 hidden_high, hidden_high == 1 ? "" : "s", SHARP_WINDOW, hidden_low,
                 hidden_low == 1 ? "" : "s");
    else if (hidden_high > 0)
        snprintf(p->note, sizeof p->note,
                 "not shown: %zu value%s above %.3g× the largest threshold", hidden_high,
                 hidden_high == 1 ? "" : "s", SHARP_WINDOW);
    else if (hidden_low > 0)
        snprintf(p->note, sizeof p->note, "not shown (log axis): %zu value%s <= 0", hidden_low,
                 hidden_low == 1 ? "" : "s");

    int both = p->shown[SHARP_PRE] && p->shown[SHARP_PLAIN];
    snprintf(p->ylabel, sizeof p->ylabel, "%s",
             both                  ? "sharpness (plain and preconditioned)"
             : p->shown[SHARP_PRE] ? "preconditioned sharpness"
                                   : "sharpness");
    if (p->shown[SHARP_PRE])
        snprintf(legend_add(&p->key, series_color(0), 1, 2.0), LABEL_MAX,
                 "preconditioned sharpness");
    if (p->shown[SHARP_PLAIN])
        snprintf(legend_add(&p->key, series_color(3), 1, 1.5), LABEL_MAX, "sharpness");
    if (p->shown[SHARP_THR])
        sharp_threshold_label(s, both, legend_add(&p->key, COL_TARGET, 2, 1.5), LABEL_MAX);
    return TP_OK;
}

static void draw_sharpness(void *ud)
{
    const sharp_plot *p = ud;

    pladv(0);
    plvpor(0.10, 0.97, 0.11, 0.88); /* room above for PLplot's "(x10^k)" of large values */
    plwind(0.0, p->xmax, p->ymin, p->ymax);
    plwidth(1.0);
    plcol0(COL_GRID);
    plbox("g", 0, 0, p->logy ? "gl" : "g", 0, 0);
    plcol0(COL_FG);
    plbox("bcnst", 0, 0, p->logy ? "bcnstvl" : "bcnstv", 0, 0);
    pllab("step", p->ylabel, p->title);
    if (p->note[0] != '\0') { /* small, between the title and the box, on the right */
        plschr(0.0, 0.8);
        plmtex("t", 0.6, 1.0, 1.0, p->note);
        plschr(0.0, 1.0);
    }

    /* The threshold under the measured series, the one it bounds on top. */
    plcol0(COL_TARGET);
    pllsty(2);
    plwidth(1.5);
    plot_series(p->n, p->x, p->y[SHARP_THR]);
    pllsty(1);
    plcol0(series_color(3));
    plot_series(p->n, p->x, p->y[SHARP_PLAIN]);
    plcol0(series_color(0));
    plwidth(2.0);
    plot_series(p->n, p->x, p->y[SHARP_PRE]);
    plwidth(1.0);

    /* Top right on a linear axis: above the threshold (the window ends at 1.5x it) or above the
     * values (room was left); bottom right on a log axis, where sharpness rising to its
     * threshold leaves the lower right empty and the window's top is only 0.18 decades above
     * the threshold. */
    legend_draw(&p->key, p->logy ? PL_POSITION_BOTTOM : PL_POSITION_TOP);
}

static int sharp_trial_title(const tp_trial_summary *t, void *ud)
{
    sharp_title(ud, LABEL_MAX * 2, t->id, t->workload, t->variant, t->optimizer);
    return 0;
}

int tp_report_sharpness(tp_results *db, int64_t trial_id, const char *svg_path,
                        const char *png_path, char *err, size_t errlen)
{
    sharp_rows s = {0};
    sharp_plot p = {0};
    char title[LABEL_MAX * 2] = "";
    int rc;

    if (db == NULL || (svg_path == NULL && png_path == NULL)) {
        tp__errf(err, errlen,
                 "tp_report_sharpness: a results database and an svg or png path are required");
        return TP_EINVAL;
    }
    if ((rc = tp_results_foreach_trial(db, &trial_id, 1, sharp_trial_title, title, err, errlen)) !=
        TP_OK)
        return rc;
    if ((rc = sharp_load(db, trial_id, &s, err, errlen)) != TP_OK)
        goto error;
    if (s.n == 0) {
        tp__errf(err, errlen,
                 "%s: trial %lld has no sharpness measurements: run it with --sharpness-every K "
                 "(or with `trainperf sharpness`) to record them",
                 tp_results_path(db), (long long)trial_id);
        rc = TP_ENOENT;
        goto error;
    }
    if ((rc = sharp_build(&s, title, &p, err, errlen)) != TP_OK)
        goto error;
    if (p.values == 0) {
        tp__errf(err, errlen,
                 "%s: trial %lld has %zu sharpness measurement%s but no measured value (all NaN)",
                 tp_results_path(db), (long long)trial_id, s.n, s.n == 1 ? "" : "s");
        rc = TP_ENOENT;
        goto error;
    }
    rc = render_files(SHARP_W, SHARP_H, draw_sharpness, &p, svg_path, png_path, err, errlen);
error:
    sharp_free(&p);
    free(s.r);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* The HTML report */

static const char html_style[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;"
    "margin:2em auto;max-width:1100px;padding:0 1em;color:#222;line-height:1.4}"
    "h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ccc}"
    "h3{margin-bottom:.3em}.meta{color:#666}"
    "table{border-collapse:collapse;margin:.6em 0;font-size:.92em}"
    "th,td{border:1px solid #ccc;padding:.25em .55em;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "tr.failed td{background:#fdecea}tr.best td{font-weight:600}"
    ".note{color:#666;font-style:italic}.msg{font-family:monospace;white-space:pre-wrap;"
    "word-break:break-word;max-width:32em}"
    "svg.plot{width:100%;max-width:880px;height:auto;display:block;border:1px solid #eee}"
    "small{color:#666}";

static void html_head(rbuf *b, tp_results *db)
{
    char when[64] = "unknown time";
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) != NULL)
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    rb_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
               "<title>trainperf report</title>\n<style>");
    rb_puts(b, html_style);
    rb_puts(b, "</style>\n</head>\n<body>\n<h1>trainperf report</h1>\n<p class=\"meta\">Made ");
    rb_html(b, when);
    rb_puts(b, " by trainperf " TP_VERSION_STRING " from <code>");
    rb_html(b, tp_results_path(db));
    rb_puts(b, "</code>.</p>\n");
}

static void html_scores(rbuf *b, const tp_score_table *t)
{
    size_t S = t->num_submissions, W = t->num_workloads;
    char buf[64];

    rb_puts(b, "<h2 id=\"scores\">Scores</h2>\n<p>Benchmark score B = (1/3) &#x222B;<sub>1</sub>"
               "<sup>4</sup> &#x3C1;(&#x3C4;) d&#x3C4;: 1 when a submission is the fastest "
               "to the target on every workload, 0 when it never gets within 4&#xD7; of the "
               "fastest.</p>\n<table class=\"scores\">\n<thead><tr><th>Submission</th>"
               "<th>Score</th><th>Workloads within 4&#xD7;</th></tr></thead>\n<tbody>\n");
    double best = -INFINITY;
    for (size_t s = 0; s < S; s++)
        if (t->score != NULL && isfinite(t->score[s]))
            best = fmax(best, t->score[s]);
    for (size_t s = 0; s < S; s++) {
        double sc = t->score != NULL ? t->score[s] : NAN;
        size_t within = 0;
        for (size_t w = 0; w < W; w++)
            within += isfinite(t->ratio[s * W + w]) ? 1 : 0;
        rb_puts(b, sc == best ? "<tr class=\"best\"><td>" : "<tr><td>");
        rb_html(b, t->submissions[s]);
        if (isfinite(sc))
            rb_printf(b, "</td><td class=\"num\">%.4f</td>", sc);
        else
            rb_puts(b, "</td><td class=\"num\">-</td>");
        rb_printf(b, "<td class=\"num\">%zu / %zu</td></tr>\n", within, W);
    }
    rb_puts(b, "</tbody>\n</table>\n");

    rb_puts(b, "<h3>Time to target per workload</h3>\n<p>Each cell: the submission's time "
               "to the validation target (median over studies) and its ratio to the fastest "
               "submission on that workload. <em>cut</em>: reached, but removed by the "
               "held-out rule or the 4&#xD7; cut (the raw time is shown).</p>\n"
               "<table class=\"times\">\n<thead><tr><th>Workload</th>");
    for (size_t s = 0; s < S; s++) {
        rb_puts(b, "<th>");
        rb_html(b, t->submissions[s]);
        rb_puts(b, "</th>");
    }
    rb_puts(b, "</tr></thead>\n<tbody>\n");
    for (size_t w = 0; w < W; w++) {
        rb_puts(b, "<tr><td>");
        rb_html(b, t->workloads[w]);
        if (t->variant_name != NULL && t->variant_name[w] != NULL) {
            rb_puts(b, "<br><small>held-out variant: ");
            rb_html(b, t->variant_name[w]);
            rb_puts(b, "</small>");
        }
        rb_puts(b, "</td>");
        for (size_t s = 0; s < S; s++) {
            double time = t->time[s * W + w], ratio = t->ratio[s * W + w];
            double raw = t->raw_time != NULL ? t->raw_time[s * W + w] : NAN;
            rb_puts(b, "<td class=\"num\">");
            if (isfinite(time) && isfinite(ratio)) {
                fmt_seconds(buf, sizeof buf, time);
                rb_html(b, buf);
                rb_printf(b, "<br><small>%.2f&#xD7;</small>", ratio);
            } else if (isfinite(raw)) {
                fmt_seconds(buf, sizeof buf, raw);
                rb_puts(b, "cut<br><small>raw ");
                rb_html(b, buf);
                rb_puts(b, "</small>");
            } else {
                rb_puts(b, "not reached");
            }
            rb_puts(b, "</td>");
        }
        rb_puts(b, "</tr>\n");
    }
    rb_puts(b, "</tbody>\n</table>\n");
}

static int html_profile(rbuf *b, const tp_score_table *t, char *err, size_t errlen)
{
    profile_plot p;
    rbuf svg = {0};
    int rc = profile_build(t, &p, err, errlen);
    if (rc != TP_OK)
        return rc;
    rb_puts(b, "<h2 id=\"profile\">Performance profiles</h2>\n<p>&#x3C1;<sub>s</sub>(&#x3C4;)"
               ": the fraction of workloads on which submission s reaches the target within "
               "&#x3C4; times the fastest submission's time.</p>\n");
    if ((rc = render_svg(PROFILE_W, PROFILE_H, draw_profile, &p, &svg, err, errlen)) == TP_OK)
        rc = svg_inline(b, svg.p, svg.len, "performance profiles", err, errlen);
    rb_puts(b, "\n");
    profile_free(&p);
    free(svg.p);
    return rc;
}

static int cmp_trial_group(const void *a, const void *b, void *ud)
{
    const rdata *d = ud;
    const rtrial *x = &d->t[*(const size_t *)a], *y = &d->t[*(const size_t *)b];
    int c = strcmp(x->workload, y->workload);
    if (c == 0)
        c = strcmp(x->variant, y->variant);
    if (c == 0)
        c = (x->id > y->id) - (x->id < y->id);
    return c;
}

static int html_curves(rbuf *b, const rdata *d, char *err, size_t errlen)
{
    int rc = TP_OK;
    size_t *order = malloc((d->n + 1) * sizeof *order);
    curves_plot *c = calloc(1, sizeof *c);
    rbuf svg = {0};
    legend key = {0};
    if (order == NULL || c == NULL || legend_init(&key, d->nsubs + MAX_TARGETS) != TP_OK) {
        free(order);
        free(c);
        tp__errf(err, errlen, "cannot draw the validation curves: out of memory");
        return TP_ENOMEM;
    }
    for (size_t i = 0; i < d->n; i++)
        order[i] = i;
    qsort_r(order, d->n, sizeof *order, cmp_trial_group, (void *)d);

    rb_puts(b, "<h2 id=\"curves\">Validation curves</h2>\n");
    if (d->n == 0)
        rb_puts(b, "<p class=\"note\">No trials in this database.</p>\n");
    for (size_t g = 0; g < d->n;) {
        const rtrial *first = &d->t[order[g]];
        size_t end = g;
        while (end < d->n && strcmp(d->t[order[end]].workload, first->workload) == 0 &&
               strcmp(d->t[order[end]].variant, first->variant) == 0)
            end++;

        memset(c, 0, sizeof *c);
        c->key = key; /* the same buffers for every workload */
        c->d = d;
        c->trials = order + g;
        c->n = end - g;
        char wl[LABEL_MAX], var[LABEL_MAX], metric[LABEL_MAX];
        pl_text(wl, sizeof wl, first->workload, PLOT_LABEL_CHARS);
        pl_text(var, sizeof var, first->variant, PLOT_LABEL_CHARS);
        const char *metric_name = "";
        for (size_t k = g; k < end && metric_name[0] == '\0'; k++)
            metric_name = d->t[order[k]].metric;
        pl_text(metric, sizeof metric, metric_name[0] != '\0' ? metric_name : "metric",
                PLOT_LABEL_CHARS);
        snprintf(c->title, sizeof c->title, "%s%s%s: validation %s", wl,
                 var[0] != '\0' ? " / " : "", var, metric);
        snprintf(c->ylabel, sizeof c->ylabel, "validation %s", metric);
        c->maximize = first->maximize;
        for (size_t k = g; k < end; k++) {
            double tg = d->t[order[k]].target;
            int seen = !isfinite(tg);
            for (size_t j = 0; j < c->ntargets && !seen; j++)
                seen = c->targets[j] == tg;
            if (!seen && c->ntargets < MAX_TARGETS)
                c->targets[c->ntargets++] = tg;
        }

        rb_puts(b, "<h3>");
        rb_html(b, first->workload);
        if (first->variant[0] != '\0') {
            rb_puts(b, " <small>variant ");
            rb_html(b, first->variant);
            rb_puts(b, "</small>");
        }
        rb_printf(b, " <small>(%zu trial%s)</small></h3>\n", c->n, c->n == 1 ? "" : "s");
        if (!curves_ranges(c)) {
            rb_puts(b, "<p class=\"note\">No evaluations recorded.</p>\n");
        } else {
            curves_legend(c);
            svg.len = 0;
            rc = render_svg(CURVES_W, CURVES_H, draw_curves, c, &svg, err, errlen);
            if (rc != TP_OK)
                goto error;
            char label[LABEL_MAX * 2];
            snprintf(label, sizeof label, "validation curves of %s%s%s", first->workload,
                     first->variant[0] != '\0' ? " / " : "", first->variant);
            if ((rc = svg_inline(b, svg.p, svg.len, label, err, errlen)) != TP_OK)
                goto error;
            rb_puts(b, "\n");
        }
        g = end;
    }
error:
    legend_free(&key);
    free(svg.p);
    free(order);
    free(c);
    return rc;
}

/* The summary line under a trial's sharpness plot: the Edge of Stability pass rule of
 * tp_sharpness_summarize (the measured value the threshold bounds over the threshold, median
 * from the first measurement at >= 0.95x on) and what a measurement costs. */
static int html_sharp_summary(rbuf *b, const sharp_rows *s, char *err, size_t errlen)
{
    size_t n = s->n;
    double *buf = malloc((n > 0 ? n : 1) * 3 * sizeof *buf);
    uint64_t *step = malloc((n > 0 ? n : 1) * sizeof *step);
    uint32_t *iters = malloc((n > 0 ? n : 1) * sizeof *iters);
    if (buf == NULL || step == NULL || iters == NULL) {
        free(buf);
        free(step);
        free(iters);
        tp__errf(err, errlen, "cannot summarize the sharpness: out of memory");
        return TP_ENOMEM;
    }
    double *value = buf, *threshold = buf + n, *seconds = buf + 2 * n;
    for (size_t i = 0; i < n; i++) {
        const tp_sharpness_row *r = &s->r[i];
        value[i] = r->threshold_kind == 2   ? r->precond_sharpness
                   : r->threshold_kind == 1 ? r->sharpness
                                            : NAN;
        threshold[i] = r->threshold;
        seconds[i] = r->seconds;
        step[i] = r->step;
        iters[i] = r->iters;
    }
    tp_sharpness_summary sum;
    tp_sharpness_summarize(value, threshold, step, seconds, iters, n, &sum);
    const char *what = sharp_kind(s) == 2 ? "preconditioned sharpness" : "sharpness";
    char sec[64];

    rb_printf(b, "<p class=\"sharp\">%zu measurement%s", n, n == 1 ? "" : "s");
    if (n > 0)
        rb_printf(b, " (steps %llu&#x2013;%llu)", (unsigned long long)step[0],
                  (unsigned long long)step[n - 1]);
    if (sum.measurements == 0)
        rb_puts(b, "; no stability threshold known for this optimizer");
    else if (sum.first_reach < 0)
        rb_printf(b, "; %s never reached 0.95&#xD7; its threshold", what);
    else
        rb_printf(b,
                  "; %s reached 0.95&#xD7; its threshold at step %llu, then median "
                  "<strong>%.3f&#xD7;</strong> (range %.3f&#x2013;%.3f&#xD7; over %u "
                  "measurement%s)",
                  what, (unsigned long long)sum.reach_step, sum.median_ratio, sum.min_ratio,
                  sum.max_ratio, sum.after, sum.after == 1 ? "" : "s");
    fmt_seconds(sec, sizeof sec, sum.median_seconds);
    rb_puts(b, ". One measurement: median ");
    rb_html(b, sec);
    if (isfinite(sum.median_iters))
        rb_printf(b, ", %.0f Hessian-vector products", sum.median_iters);
    rb_puts(b, ".</p>\n");
    free(buf);
    free(step);
    free(iters);
    return TP_OK;
}

/* "Training dynamics": only when some trial measured its sharpness; the first SHARP_HTML_MAX
 * such trials (by id) get a plot and a summary line. */
static int html_dynamics(rbuf *b, tp_results *db, const rdata *d, char *err, size_t errlen)
{
    int rc = TP_OK;
    sharp_rows s = {0};
    sharp_plot p = {0};
    rbuf sec = {0}, svg = {0};
    size_t with = 0, shown = 0;

    for (size_t i = 0; i < d->n; i++) {
        const rtrial *t = &d->t[i];
        if ((rc = sharp_load(db, t->id, &s, err, errlen)) != TP_OK)
            goto error;
        if (s.n == 0)
            continue;
        with++;
        if (shown == SHARP_HTML_MAX)
            continue;
        shown++;

        rb_printf(&sec, "<h3>Trial %lld: ", (long long)t->id);
        rb_html(&sec, t->workload);
        if (t->variant[0] != '\0') {
            rb_puts(&sec, " <small>variant ");
            rb_html(&sec, t->variant);
            rb_puts(&sec, "</small>");
        }
        rb_puts(&sec, ", ");
        rb_html(&sec, t->optimizer);
        if (strcmp(t->submission, t->optimizer) != 0) {
            rb_puts(&sec, " <small>(");
            rb_html(&sec, t->submission);
            rb_puts(&sec, ")</small>");
        }
        rb_puts(&sec, "</h3>\n");

        char title[LABEL_MAX * 2];
        sharp_title(title, sizeof title, t->id, t->workload, t->variant, t->optimizer);
        if ((rc = sharp_build(&s, title, &p, err, errlen)) != TP_OK)
            goto error;
        if (p.values == 0) {
            rb_puts(&sec, "<p class=\"note\">No measured values (all NaN).</p>\n");
        } else {
            svg.len = 0;
            if ((rc = render_svg(SHARP_W, SHARP_H, draw_sharpness, &p, &svg, err, errlen)) != TP_OK)
                goto error;
            char label[64];
            snprintf(label, sizeof label, "sharpness of trial %lld", (long long)t->id);
            if ((rc = svg_inline(&sec, svg.p, svg.len, label, err, errlen)) != TP_OK)
                goto error;
            rb_puts(&sec, "\n");
        }
        sharp_free(&p);
        if ((rc = html_sharp_summary(&sec, &s, err, errlen)) != TP_OK)
            goto error;
    }
    if (with > 0) { /* else no section at all */
        rb_puts(b,
                "<h2 id=\"dynamics\">Training dynamics</h2>\n<p>Sharpness: the largest "
                "eigenvalue of the Hessian H of the training loss over a fixed set of training "
                "examples; preconditioned sharpness: that of P<sup>-1</sup>H for an optimizer "
                "with preconditioner P. An optimizer is stable while what its threshold bounds "
                "(sharpness for gradient descent and momentum, preconditioned sharpness for Adam "
                "and RMSProp) stays below the threshold, 2/&#x3B7; for gradient descent and "
                "38/&#x3B7; for Adam at &#x3B2;<sub>1</sub> = 0.9; at the Edge of Stability it "
                "rises to the threshold and hovers there. Each summary gives the median of "
                "value / threshold from the first measurement at 0.95&#xD7; the threshold on."
                "</p>\n");
        if (with > shown)
            rb_printf(b,
                      "<p class=\"note\">Showing the first %zu of the %zu trials with sharpness "
                      "measurements (by trial id).</p>\n",
                      shown, with);
        rb_put(b, sec.p != NULL ? sec.p : "", sec.len);
        if (sec.oom)
            b->oom = 1;
    }
error:
    sharp_free(&p);
    free(s.r);
    free(sec.p);
    free(svg.p);
    return rc;
}

static void html_trials(rbuf *b, const rdata *d)
{
    char buf[64];
    size_t count[5] = {0};
    for (size_t i = 0; i < d->n; i++)
        if ((unsigned)d->t[i].status < 5)
            count[d->t[i].status]++;
    rb_printf(b,
              "<h2 id=\"trials\">Trials</h2>\n<p>%zu trial%s: %zu reached, %zu budget, %zu "
              "complete, %zu failed, %zu running.</p>\n",
              d->n, d->n == 1 ? "" : "s", count[TP_TRIAL_REACHED], count[TP_TRIAL_BUDGET],
              count[TP_TRIAL_COMPLETE], count[TP_TRIAL_FAILED], count[TP_TRIAL_RUNNING]);
    if (d->n == 0)
        return;
    rb_puts(b, "<table class=\"trials\">\n<thead><tr><th>#</th><th>Submission</th>"
               "<th>Workload</th><th>Study</th><th>Trial</th><th>Status</th><th>Steps</th>"
               "<th>Evals</th><th>Time to target</th><th>Best</th><th>Target</th>"
               "<th>Message</th></tr></thead>\n<tbody>\n");
    for (size_t i = 0; i < d->n; i++) {
        const rtrial *t = &d->t[i];
        rb_puts(b, t->status == TP_TRIAL_FAILED ? "<tr class=\"failed\">" : "<tr>");
        rb_printf(b, "<td class=\"num\">%lld</td><td>", (long long)t->id);
        rb_html(b, t->submission);
        rb_puts(b, "</td><td>");
        rb_html(b, t->workload);
        if (t->variant[0] != '\0') {
            rb_puts(b, "<br><small>");
            rb_html(b, t->variant);
            rb_puts(b, "</small>");
        }
        rb_printf(b, "</td><td class=\"num\">%d</td><td class=\"num\">%d</td><td>", t->study,
                  t->trial_index);
        rb_html(b, tp_trial_status_name(t->status));
        rb_printf(b, "</td><td class=\"num\">%llu</td><td class=\"num\">%zu</td>",
                  (unsigned long long)t->steps, t->n);
        fmt_seconds(buf, sizeof buf, t->time_to_target);
        rb_puts(b, "<td class=\"num\">");
        rb_html(b, buf);
        fmt_number(buf, sizeof buf, t->best);
        rb_puts(b, "</td><td class=\"num\">");
        rb_html(b, buf);
        if (t->metric[0] != '\0' && !isnan(t->best)) {
            rb_puts(b, " <small>");
            rb_html(b, t->metric);
            rb_puts(b, "</small>");
        }
        fmt_number(buf, sizeof buf, t->target);
        rb_puts(b, "</td><td class=\"num\">");
        rb_html(b, buf);
        rb_puts(b, "</td><td class=\"msg\">");
        if (t->reason != TP_OK) {
            rb_html(b, tp__reason_name(t->reason));
            rb_puts(b, ": ");
        }
        rb_html(b, t->message);
        rb_puts(b, "</td></tr>\n");
    }
    rb_puts(b, "</tbody>\n</table>\n");
}

int tp_report_html(tp_results *db, const tp_score_table *score, const char *out_path, char *err,
                   size_t errlen)
{
    rdata d;
    rbuf b = {0};
    int rc;

    if (db == NULL || out_path == NULL) {
        tp__errf(err, errlen,
                 "tp_report_html: a results database and an output path are "
                 "required");
        return TP_EINVAL;
    }
    if (score != NULL && (score->num_submissions == 0 || score->num_workloads == 0))
        score = NULL;
    if ((rc = rdata_load(db, score, &d, err, errlen)) != TP_OK)
        goto error;

    html_head(&b, db);
    if (score != NULL) {
        html_scores(&b, score);
        if ((rc = html_profile(&b, score, err, errlen)) != TP_OK)
            goto error;
    } else {
        rb_puts(&b, "<h2 id=\"scores\">Scores</h2>\n<p class=\"note\">Nothing to score: no "
                    "score table was given (scores need every submission's trials on every "
                    "workload of a study).</p>\n");
    }
    if ((rc = html_curves(&b, &d, err, errlen)) != TP_OK)
        goto error;
    if ((rc = html_dynamics(&b, db, &d, err, errlen)) != TP_OK)
        goto error;
    html_trials(&b, &d);
    rb_puts(&b, "</body>\n</html>\n");
    if (b.oom) {
        tp__errf(err, errlen, "%s: out of memory building the report", out_path);
        rc = TP_ENOMEM;
        goto error;
    }
    rc = write_file(out_path, b.p, b.len, err, errlen);
error:
    rdata_free(&d);
    free(b.p);
    return rc;
}
