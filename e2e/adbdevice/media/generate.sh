#!/bin/sh
# generate.sh makes the extra clips the emulated device can stream (package
# mediasvc/e2e/adbdevice embeds them):
#   gop10.h264    10 s of 1280x720 30 fps H.264 constrained baseline 3.1
#                 (42e01f), one IDR at the start only (GOP 300 = 10 s, like
#                 real screenrecord's ~10 s IDR interval), SPS/PPS once,
#                 ~800 kb/s, raw Annex-B. Looped, it gives an IDR every 10 s.
#   portrait.h264 10 s of 720x1280 (the device rotated), GOP 30, SPS/PPS
#                 before each IDR, ~800 kb/s.
#   high.h264     3 s of 1280x720 30 fps H.264 High 4.0 (640028: CABAC,
#                 8x8 transforms, no B-frames, as phones' realtime
#                 encoders), GOP 30, SPS/PPS before each IDR, ~800 kb/s.
# Needs ffmpeg with libx264 and drawtext, the DejaVu fonts, and perl.
# Single-threaded, bitexact x264: reproducible with the same versions.
set -eu
cd "$(dirname "$0")"
MONO=${MONO:-/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf}

clip() { # size gop out [seconds profile level]
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=s=$1:r=30:d=${4:-10}" \
    -vf "drawtext=fontfile=$MONO:text='$3 frame %{frame_num}':x=40:y=40:fontsize=40:fontcolor=white:box=1:boxcolor=black,format=yuv420p" \
    -fflags +bitexact -flags:v +bitexact -threads:v 1 \
    -c:v libx264 -profile:v "${5:-baseline}" -level:v "${6:-3.1}" -pix_fmt yuv420p \
    -r 30 -g "$2" -keyint_min "$2" -sc_threshold 0 -bf 0 \
    -b:v 800k -maxrate 800k -bufsize 800k \
    -x264-params repeat-headers=1 \
    -bsf:v h264_mp4toannexb -f h264 "$3.h264"
  [ "${5:-baseline}" = baseline ] || return 0
  # constraint_set2 too, so profile-level-id is 42e01f as in the demo clip.
  perl -0777 -pi -e 's/\x00\x00\x01\x67\x42\xc0\x1f/\x00\x00\x01\x67\x42\xe0\x1f/g' "$3.h264"
}
clip 1280x720 300 gop10
clip 720x1280 30 portrait
clip 1280x720 30 high 3 high 4.0
