/* jpeg.c: JPEG decoding through TurboJPEG 2.1 (see jpeg.h).
 *
 * How TurboJPEG 2.1.5 reports problems (read in its turbojpeg.c), which decides the code
 * below. Truncated or corrupt entropy-coded data is only a warning to libjpeg ("Premature
 * end of JPEG file", "Corrupt JPEG data: ..."), after which it goes on and fills in the
 * rest of the image (gray for a cut file). tjDecompress2 and tjDecompressHeader3 still
 * return -1 when any warning was emitted (tjGetErrorCode then says TJERR_WARNING), and
 * every -1 is a failure here; TJFLAG_STOPONWARNING only makes the decode stop at the first
 * warning instead of finishing a picture that is thrown away. The message is libjpeg's
 * first one, kept by TurboJPEG in a thread-local buffer (tjGetErrorStr2). Two holes:
 * tjDecompressHeader3 returns 0 with no width and height when the data holds no image (a
 * file cut inside its header ends in libjpeg's fake EOI, which reads as a "tables-only"
 * stream), hence the check for a size of zero; and after a libjpeg error inside
 * tjDecompressHeader3 the handle is left mid-header (see read_header).
 *
 * Truncated or corrupt? libjpeg's message is not enough to tell (a file cut inside a scan
 * header gives "Invalid component ID 217 in SOS"), so the data's marker structure decides:
 * when it runs off the end of the buffer before the end-of-image marker the file was cut
 * (ends_before_eoi); otherwise the data is complete and corrupt. */
#include "data/jpeg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

/* Accurate integer IDCT (TurboJPEG's decompression default, named so it stays so), fancy
 * upsampling (the default: no TJFLAG_FASTUPSAMPLE), stop at the first warning, and refuse
 * progressive files with more than 500 scans (a known denial of service; no real image
 * has that many). */
#define JPEG_DECODE_FLAGS (TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS)

struct jpeg_decoder {
    tjhandle tj;
    uint8_t *file; /* jpeg_read's file bytes */
    size_t file_cap;
    uint8_t *cmyk; /* CMYK samples of a CMYK/YCCK image before conversion */
    size_t cmyk_cap;
};

static jpeg_status jpeg_fail(char *err, size_t errn, jpeg_status s, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static jpeg_status jpeg_fail(char *err, size_t errn, jpeg_status s, const char *name, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (errn) snprintf(err, errn, "%s: %s", name ? name : "(memory)", msg);
    return s;
}

void image_u8_free(image_u8 *im) {
    free(im->data);
    memset(im, 0, sizeof *im);
}

const char *jpeg_status_name(jpeg_status s) {
    switch (s) {
    case JPEG_OK: return "ok";
    case JPEG_ERR_OPEN: return "unreadable";
    case JPEG_ERR_NOT_JPEG: return "not a JPEG";
    case JPEG_ERR_TRUNCATED: return "truncated";
    case JPEG_ERR_CORRUPT: return "corrupt";
    case JPEG_ERR_TOO_BIG: return "too big";
    case JPEG_ERR_MEMORY: return "out of memory";
    }
    return "unknown status";
}

jpeg_decoder *jpeg_decoder_new(void) {
    jpeg_decoder *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    if (!(j->tj = tjInitDecompress())) {
        free(j);
        return NULL;
    }
    return j;
}

void jpeg_decoder_free(jpeg_decoder *j) {
    if (!j) return;
    if (j->tj) tjDestroy(j->tj);
    free(j->file);
    free(j->cmyk);
    free(j);
}

/* Makes *p hold at least need bytes; the old contents are not kept. 0, or -1 (no memory). */
static int reserve(uint8_t **p, size_t *cap, size_t need) {
    if (*p && need <= *cap) return 0;
    free(*p);
    *p = malloc(need);
    *cap = *p ? need : 0;
    return *p ? 0 : -1;
}

/* ---- what a non-JPEG looks like ---------------------------------------------------- */

static const char *guess_format(const uint8_t *b, size_t n) {
    static const struct { const char *magic; size_t len; const char *what; } known[] = {
        {"\x89PNG", 4, "a PNG"},        {"GIF8", 4, "a GIF"},   {"II*\0", 4, "a TIFF"},
        {"MM\0*", 4, "a TIFF"},         {"BM", 2, "a BMP"},     {"\x1f\x8b", 2, "gzip data"},
        {"PK\x03\x04", 4, "a ZIP file"}, {"%PDF", 4, "a PDF"},
    };
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if (n >= known[k].len && !memcmp(b, known[k].magic, known[k].len)) return known[k].what;
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) return "a WebP";
    if (n >= 12 && !memcmp(b + 4, "ftyp", 4)) return "an ISO media file (HEIC, AVIF, MP4)";
    return NULL;
}

/* "starts with 89 50 4E 47: a PNG?", "starts with 3C 68 74 6D: text \"<html>\"?", ... */
static void describe_start(const uint8_t *b, size_t n, char *out, size_t outn) {
    size_t k = 0, shown = n < 4 ? n : 4;
    k += (size_t)snprintf(out, outn, "starts with");
    for (size_t i = 0; i < shown && k < outn; i++) k += (size_t)snprintf(out + k, outn - k, " %02X", b[i]);
    size_t text = 0; /* printable ASCII up to the first line end, at most 32 bytes shown */
    while (text < n && text < 32 && b[text] >= 0x20 && b[text] < 0x7F) text++;
    int is_text = text == n || (text >= 4 && (text == 32 || b[text] == '\n' || b[text] == '\r' || b[text] == '\t'));
    const char *what = guess_format(b, n);
    if (k >= outn) return;
    if (is_text) snprintf(out + k, outn - k, ": text \"%.*s\"?", (int)text, (const char *)b);
    else if (what) snprintf(out + k, outn - k, ": %s?", what);
}

/* Not a JPEG unless it starts with the SOI marker FF D8; NOT_JPEG after a message. */
static jpeg_status check_signature(const char *name, const uint8_t *buf, size_t n, char *err, size_t errn) {
    if (n == 0) return jpeg_fail(err, errn, JPEG_ERR_NOT_JPEG, name, "empty file");
    if (n >= 2 && buf[0] == 0xFF && buf[1] == 0xD8) return JPEG_OK;
    char what[128];
    describe_start(buf, n, what, sizeof what);
    return jpeg_fail(err, errn, JPEG_ERR_NOT_JPEG, name, "not a JPEG (%s)", what);
}

/* ---- failures reported by libjpeg ---------------------------------------------------- */

/* 1 when the marker structure runs past the end of b before an EOI marker (FF D9): the
 * data was cut. Marker segments are skipped by their length fields (so an EXIF thumbnail's
 * EOI inside APP1 is not taken for the image's); the entropy-coded data after a scan
 * header is skipped to the next marker, i.e. FF followed by anything but 00 (a stuffed
 * FF) or an RSTn code. A length below 2 is corruption, not truncation. */
static int ends_before_eoi(const uint8_t *b, size_t n) {
    size_t i = 2; /* after SOI */
    for (;;) {
        while (i < n && b[i] != 0xFF) i++; /* stray bytes between segments */
        while (i < n && b[i] == 0xFF) i++; /* fill bytes */
        if (i >= n) return 1;
        uint8_t m = b[i++];
        if (m == 0xD9) return 0;
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue; /* markers without a length */
        if (n - i < 2) return 1;
        size_t len = (size_t)b[i] << 8 | b[i + 1];
        if (len < 2) return 0;
        if (n - i < len) return 1;
        i += len;
        if (m == 0xDA)
            while (i + 1 < n && !(b[i] == 0xFF && b[i + 1] != 0x00 && !(b[i + 1] >= 0xD0 && b[i + 1] <= 0xD7))) i++;
    }
}

/* Classifies the failure of the TurboJPEG call that just ran on buf and writes its message
 * (libjpeg's own text when have_msg, else "no image in the data"). */
static jpeg_status libjpeg_fail(jpeg_decoder *j, const char *name, const uint8_t *buf, size_t n, int have_msg,
                                char *err, size_t errn) {
    char msg[256];
    if (have_msg) {
        snprintf(msg, sizeof msg, "%s", tjGetErrorStr2(j->tj));
        for (char *c = msg; *c; c++) /* TurboJPEG's file errors carry "\n" + strerror */
            if (*c == '\n' || *c == '\r') *c = ' ';
    } else {
        snprintf(msg, sizeof msg, "no image in the data");
    }
    if (strstr(msg, "Insufficient memory") || strstr(msg, "Memory allocation failure"))
        return jpeg_fail(err, errn, JPEG_ERR_MEMORY, name, "out of memory while decoding (libjpeg: %s)", msg);
    if (ends_before_eoi(buf, n))
        return jpeg_fail(err, errn, JPEG_ERR_TRUNCATED, name,
                         "truncated: the data ends before the end-of-image marker (libjpeg: %s)", msg);
    return jpeg_fail(err, errn, JPEG_ERR_CORRUPT, name, "corrupt JPEG data (libjpeg %s: %s)",
                     tjGetErrorCode(j->tj) == TJERR_WARNING ? "warning" : "error", msg);
}

/* Signature, header and size limits; *h, *w, *cs (a TJCS_*) set when the header was read. */
static jpeg_status read_header(jpeg_decoder *j, const char *name, const uint8_t *buf, size_t n, int *h, int *w,
                               int *cs, char *err, size_t errn) {
    *h = *w = 0;
    jpeg_status s = check_signature(name, buf, n, err, errn);
    if (s != JPEG_OK) return s;
    if (!j->tj && !(j->tj = tjInitDecompress()))
        return jpeg_fail(err, errn, JPEG_ERR_MEMORY, name, "cannot initialise TurboJPEG: %s", tjGetErrorStr2(NULL));
    int sub = 0, width = 0, height = 0;
    *cs = -1;
    if (tjDecompressHeader3(j->tj, buf, (unsigned long)n, &width, &height, &sub, cs) != 0) {
        /* TurboJPEG 2.1 leaves the handle in the middle of a header after a libjpeg error
         * there, and the next header read resumes from that state ("Bogus DQT index" on a
         * good file): the handle is replaced after the message is taken. */
        s = libjpeg_fail(j, name, buf, n, 1, err, errn);
        tjDestroy(j->tj);
        j->tj = tjInitDecompress(); /* NULL: retried at the next call */
        return s;
    }
    /* 0 with no size: no image in the stream; a warning then (a cut header) has a message */
    if (width < 1 || height < 1)
        return libjpeg_fail(j, name, buf, n, tjGetErrorCode(j->tj) == TJERR_WARNING, err, errn);
    *h = height, *w = width;
    if (width > JPEG_MAX_SIDE || height > JPEG_MAX_SIDE)
        return jpeg_fail(err, errn, JPEG_ERR_TOO_BIG, name,
                         "the image is %dx%d (w x h): over the limit of %d pixels a side", width, height,
                         JPEG_MAX_SIDE);
    if ((long long)width * height > JPEG_MAX_PIXELS)
        return jpeg_fail(err, errn, JPEG_ERR_TOO_BIG, name, "the image is %dx%d (w x h): over the limit of %lld pixels",
                         width, height, JPEG_MAX_PIXELS);
    return JPEG_OK;
}

jpeg_status jpeg_size(jpeg_decoder *j, const char *name, const uint8_t *buf, size_t n, int *h, int *w, char *err,
                      size_t errn) {
    int cs;
    return read_header(j, name, buf, n, h, w, &cs, err, errn);
}

/* CMYK -> RGB as Pillow 9.4 gives it for Image.open(f).convert("RGB") on a CMYK JPEG:
 *  1. Pillow decodes every 4-channel JPEG with the raw mode "CMYK;I" (JpegImagePlugin.py:
 *     "assume adobe conventions"), i.e. it inverts each sample libjpeg delivers, with or
 *     without an Adobe APP14 marker and whatever its transform (libjpeg has already turned
 *     YCCK into CMYK): C = 255 - c, M = 255 - m, Y = 255 - y, K = 255 - k.
 *  2. Its cmyk2rgb (src/libImaging/Convert.c): nk = 255 - K, R = nk - MULDIV255(C, nk),
 *     G and B alike, where MULDIV255(a, b) = (t = a * b + 128, ((t >> 8) + t) >> 8) is
 *     a * b / 255 rounded. Its clip to 0..255 never acts: MULDIV255(C, nk) <= nk.
 * Checked with PIL 9.4 on all 65536 (value, K) pairs and by tests/test_jpeg.c's goldens. */
static inline uint8_t cmyk_channel(uint8_t c, uint8_t k) {
    unsigned C = 255u - c, K = 255u - k;       /* step 1 */
    unsigned nk = 255u - K, t = C * nk + 128u; /* step 2 */
    return (uint8_t)(nk - (((t >> 8) + t) >> 8));
}

static void cmyk_to_rgb(const uint8_t *cmyk, uint8_t *rgb, size_t pixels) {
    for (size_t p = 0; p < pixels; p++, cmyk += 4, rgb += 3) {
        rgb[0] = cmyk_channel(cmyk[0], cmyk[3]);
        rgb[1] = cmyk_channel(cmyk[1], cmyk[3]);
        rgb[2] = cmyk_channel(cmyk[2], cmyk[3]);
    }
}

jpeg_status jpeg_decode(jpeg_decoder *j, const char *name, const uint8_t *buf, size_t n, image_u8 *out, char *err,
                        size_t errn) {
    int h, w, cs;
    out->h = out->w = 0;
    jpeg_status s = read_header(j, name, buf, n, &h, &w, &cs, err, errn);
    if (s != JPEG_OK) return s;
    size_t pixels = (size_t)h * (size_t)w;
    int cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK; /* TurboJPEG 2.1 decodes these to CMYK only */
    if (reserve(&out->data, &out->cap, pixels * 3) || (cmyk && reserve(&j->cmyk, &j->cmyk_cap, pixels * 4)))
        return jpeg_fail(err, errn, JPEG_ERR_MEMORY, name, "out of memory for a %dx%d (w x h) image", w, h);
    if (tjDecompress2(j->tj, buf, (unsigned long)n, cmyk ? j->cmyk : out->data, w, 0, h, cmyk ? TJPF_CMYK : TJPF_RGB,
                      JPEG_DECODE_FLAGS) != 0)
        return libjpeg_fail(j, name, buf, n, 1, err, errn);
    if (cmyk) cmyk_to_rgb(j->cmyk, out->data, pixels);
    out->h = h, out->w = w;
    return JPEG_OK;
}

/* Makes the file buffer hold at least need bytes, keeping the first n. */
static int grow_file(jpeg_decoder *j, size_t need) {
    if (need <= j->file_cap) return 0;
    uint8_t *p = realloc(j->file, need);
    if (!p) return -1;
    j->file = p, j->file_cap = need;
    return 0;
}

jpeg_status jpeg_read(jpeg_decoder *j, const char *path, image_u8 *out, char *err, size_t errn) {
    out->h = out->w = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return jpeg_fail(err, errn, JPEG_ERR_OPEN, path, "cannot open: %s", strerror(errno));
    struct stat st;
    int e = fstat(fd, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    jpeg_status s = JPEG_OK;
    if (e) s = jpeg_fail(err, errn, JPEG_ERR_OPEN, path, "cannot read: %s", strerror(e));
    else if (st.st_size > JPEG_MAX_FILE_BYTES)
        s = jpeg_fail(err, errn, JPEG_ERR_TOO_BIG, path, "the file is %lld bytes, over the limit of %lld",
                      (long long)st.st_size, JPEG_MAX_FILE_BYTES);
    /* Read to the end of the file, not st_size bytes (a file may change size); the extra
     * byte lets the final read see end of file without growing the buffer. */
    size_t n = 0;
    if (s == JPEG_OK && grow_file(j, (size_t)st.st_size + 1))
        s = jpeg_fail(err, errn, JPEG_ERR_MEMORY, path, "out of memory for the file's %lld bytes",
                      (long long)st.st_size);
    while (s == JPEG_OK) {
        if (n > (size_t)JPEG_MAX_FILE_BYTES)
            s = jpeg_fail(err, errn, JPEG_ERR_TOO_BIG, path, "the file is over the limit of %lld bytes",
                          JPEG_MAX_FILE_BYTES);
        else if (n == j->file_cap && grow_file(j, 2 * j->file_cap))
            s = jpeg_fail(err, errn, JPEG_ERR_MEMORY, path, "out of memory for the file's bytes");
        if (s != JPEG_OK) break;
        ssize_t r = read(fd, j->file + n, j->file_cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) s = jpeg_fail(err, errn, JPEG_ERR_OPEN, path, "cannot read: %s", strerror(errno));
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    return s == JPEG_OK ? jpeg_decode(j, path, j->file, n, out, err, errn) : s;
}
