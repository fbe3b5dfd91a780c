/* jpeg.h: JPEG files decoded to 8-bit RGB through TurboJPEG (libjpeg-turbo), with the
 * pixels PIL gives for Image.open(f).convert("RGB") (detectron2 reads images that way).
 *
 *   - YCbCr and grayscale JPEGs: libjpeg's defaults (accurate integer IDCT, smooth "fancy"
 *     chroma upsampling), which are PIL's; grayscale comes out as R = G = B.
 *   - CMYK and YCCK JPEGs: decoded to CMYK by libjpeg, then converted to RGB by PIL's
 *     formula (see jpeg.c), Adobe-inverted samples assumed as PIL assumes them.
 *   - EXIF orientation is NOT applied: the pixels are in the order the file stores them,
 *     and the size is the file's, so that the loader can compare it with the size the
 *     annotation file gives.
 *   - Any problem libjpeg reports, warnings included ("Premature end of JPEG file",
 *     "Corrupt JPEG data: ..."), is a failure: no gray-filled or garbled image is returned
 *     as good. Failures are classified (jpeg_status) and described by one line
 *     "NAME: problem" in a caller buffer.
 *   - Images over JPEG_MAX_SIDE pixels on a side or JPEG_MAX_PIXELS pixels in all are
 *     refused (JPEG_ERR_TOO_BIG) from the header, before anything is allocated for them.
 *
 * Threads: a jpeg_decoder is used by one thread at a time (one per loader worker); there is
 * no global state here, and TurboJPEG 2.1 keeps libjpeg's messages per thread. */
#ifndef MRC_JPEG_H
#define MRC_JPEG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define JPEG_MAX_SIDE 16384
#define JPEG_MAX_PIXELS 100000000LL
#define JPEG_MAX_FILE_BYTES (1LL << 30) /* jpeg_read refuses bigger files (JPEG_ERR_TOO_BIG) */

/* An 8-bit RGB image, H x W x 3 interleaved, row-major, no row padding. data is reused
 * between decodes: it grows to the largest image seen (cap bytes) and never shrinks.
 * After a failed decode h = w = 0 (data and cap are kept). Zero-initialise before first use. */
typedef struct image_u8 {
    uint8_t *data;
    int h, w;
    size_t cap;
} image_u8;

void image_u8_free(image_u8 *im); /* frees data and zeroes *im */

/* JPEG_ERR_MEMORY stays last: loader_counts sizes an array by it. */
typedef enum {
    JPEG_OK = 0,
    JPEG_ERR_OPEN,      /* the file cannot be opened or read (strerror in the message) */
    JPEG_ERR_NOT_JPEG,  /* no JPEG signature (FF D8): another format, text, an empty file */
    JPEG_ERR_TRUNCATED, /* the data ends before the end-of-image marker */
    JPEG_ERR_CORRUPT,   /* libjpeg reports an error or a warning on complete data */
    JPEG_ERR_TOO_BIG,   /* over JPEG_MAX_SIDE / JPEG_MAX_PIXELS, or a file over JPEG_MAX_FILE_BYTES */
    JPEG_ERR_MEMORY     /* an allocation failed */
} jpeg_status;

typedef struct jpeg_decoder jpeg_decoder; /* a TurboJPEG handle and reusable buffers */

jpeg_decoder *jpeg_decoder_new(void); /* NULL when TurboJPEG cannot be initialised */
void jpeg_decoder_free(jpeg_decoder *j);

/* Decodes buf[0..n) into *out (grown as needed). On failure returns the status, writes
 * "NAME: problem" (one line) to err[errn] and sets out->h = out->w = 0; NAME only labels
 * the message (e.g., the path). */
jpeg_status jpeg_decode(jpeg_decoder *j, const char *name, const uint8_t *buf, size_t n, image_u8 *out, char *err,
                        size_t errn);

/* Reads the file at path into the decoder's buffer (reused between calls) and decodes it.
 * An unreadable file is JPEG_ERR_OPEN ("PATH: cannot open: No such file or directory"). */
jpeg_status jpeg_read(jpeg_decoder *j, const char *path, image_u8 *out, char *err, size_t errn);

/* The image size from the header alone (no decode). *h and *w are set whenever the header
 * could be read, also when the size is refused as JPEG_ERR_TOO_BIG; else they are 0. A
 * header that reads cleanly says nothing about the entropy-coded data after it. */
jpeg_status jpeg_size(jpeg_decoder *j, const char *name, const uint8_t *buf, size_t n, int *h, int *w, char *err,
                      size_t errn);

/* "ok", "unreadable", "not a JPEG", "truncated", "corrupt", "too big", "out of memory" */
const char *jpeg_status_name(jpeg_status s);

#ifdef __cplusplus
}
#endif

#endif
