#!/bin/sh
# generate.sh regenerates the demo clip embedded in mediasvc/adapters/demo:
#   demo.h264  10 s of 1280x720 30 fps H.264 constrained baseline 3.1 (42e01f),
#              GOP 30 (one IDR per second, SPS/PPS before each), ~2 Mbps,
#              no B-frames, raw Annex-B.
#   demo.ogg   10 s of 48 kHz stereo Opus, 20 ms frames, 64 kb/s, in Ogg.
# Needs ffmpeg with libx264, libopus and drawtext (libfreetype) and the
# DejaVu fonts (Debian: fonts-dejavu-core), and perl. Run from anywhere. Single-threaded
# x264, bitexact flags and a fixed Ogg serial make the output reproducible
# with the same ffmpeg/x264/libopus versions.
set -eu
cd "$(dirname "$0")"

FONT=${FONT:-/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf}
MONO=${MONO:-/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf}

# A phone-like screen: status bar with a running clock, a "video" card
# (testsrc2), a grid of app tiles, a moving touch indicator, a frame counter
# and a navigation bar.
VF="[0:v][1:v]overlay=x=40:y=88[bg];
[bg]drawbox=x=0:y=0:w=1280:h=56:color=0x000000@1:t=fill,
drawtext=fontfile=$MONO:text='%{pts\:hms}':x=24:y=14:fontsize=28:fontcolor=white,
drawtext=fontfile=$FONT:text='mediasvc demo':x=(w-text_w)/2:y=14:fontsize=28:fontcolor=white,
drawtext=fontfile=$MONO:expansion=none:text='5G  87%':x=w-text_w-24:y=14:fontsize=28:fontcolor=white,
drawbox=x=760:y=88:w=200:h=200:color=0xe64553@1:t=fill,
drawbox=x=1000:y=88:w=200:h=200:color=0x40a02b@1:t=fill,
drawbox=x=760:y=328:w=200:h=200:color=0x1e66f5@1:t=fill,
drawbox=x=1000:y=328:w=200:h=200:color=0xdf8e1d@1:t=fill,
drawtext=fontfile=$FONT:text='Mail':x=800:y=300:fontsize=22:fontcolor=white,
drawtext=fontfile=$FONT:text='Maps':x=1040:y=300:fontsize=22:fontcolor=white,
drawtext=fontfile=$FONT:text='Phone':x=800:y=540:fontsize=22:fontcolor=white,
drawtext=fontfile=$FONT:text='Music':x=1040:y=540:fontsize=22:fontcolor=white,
drawtext=fontfile=$MONO:text='frame %{frame_num}':x=40:y=470:fontsize=36:fontcolor=0xcdd6f4,
drawtext=fontfile=$MONO:text='t=%{pts\:flt}':x=40:y=520:fontsize=36:fontcolor=0xcdd6f4,
drawbox=x=40+mod(t*240\,600):y=580:w=40:h=40:color=0xf5c2e7@1:t=fill,
drawbox=x=0:y=656:w=1280:h=64:color=0x000000@1:t=fill,
drawtext=fontfile=$FONT:text='◁':x=400:y=670:fontsize=34:fontcolor=white,
drawtext=fontfile=$FONT:text='○':x=625:y=670:fontsize=34:fontcolor=white,
drawtext=fontfile=$FONT:text='□':x=850:y=670:fontsize=34:fontcolor=white,
format=yuv420p[v]"

ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "color=c=0x1e1e2e:s=1280x720:r=30:d=10" \
  -f lavfi -i "testsrc2=s=640x360:r=30:d=10" \
  -filter_complex "$VF" -map "[v]" \
  -fflags +bitexact -flags:v +bitexact -threads:v 1 \
  -c:v libx264 -profile:v baseline -level:v 3.1 -pix_fmt yuv420p \
  -r 30 -g 30 -keyint_min 30 -sc_threshold 0 -bf 0 \
  -b:v 2M -maxrate 2M -bufsize 1M \
  -x264-params repeat-headers=1 \
  -bsf:v h264_mp4toannexb -f h264 demo.h264

# x264 marks baseline as constraint_set0+1 (profile-level-id 42c01f).
# Browsers offer 42e01f and pion matches the profile_iop byte exactly, so set
# constraint_set2 as well (the stream is CAVLC, no B/FMO/ASO, direct_8x8
# inference on: it conforms to Extended too, as libwebrtc's own encoders
# declare). The byte after the SPS header only changes c0 -> e0; no emulation
# prevention is affected.
perl -0777 -pi -e 's/\x00\x00\x01\x67\x42\xc0\x1f/\x00\x00\x01\x67\x42\xe0\x1f/g' demo.h264

# A short melody: a C-major arpeggio, one note per 1.25 s, left and right a
# fifth apart, so a listener hears the loop point.
AF="[0:a][1:a]amerge=inputs=2,volume=0.5[a]"
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "aevalsrc=0.4*sin(2*PI*t*(261.63*pow(2\,floor(mod(t\,5)/1.25)*4/12)))*exp(-2*mod(t\,1.25)):s=48000:d=10" \
  -f lavfi -i "aevalsrc=0.4*sin(2*PI*t*(392.00*pow(2\,floor(mod(t\,5)/1.25)*4/12)))*exp(-2*mod(t\,1.25)):s=48000:d=10" \
  -filter_complex "$AF" -map "[a]" -ac 2 -ar 48000 \
  -fflags +bitexact -flags:a +bitexact \
  -c:a libopus -b:a 64k -frame_duration 20 -application audio \
  -f ogg -serial_offset 1 demo.ogg
