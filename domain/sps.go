package domain

import (
	"errors"
)

// bitReader reads the RBSP of a NAL unit bit by bit (emulation prevention
// removed beforehand).
type bitReader struct {
	b   []byte
	off int // in bits
}

var errShortSPS = errors.New("short SPS")

func (r *bitReader) u1() (uint, error) {
	if r.off >= len(r.b)*8 {
		return 0, errShortSPS
	}
	v := uint(r.b[r.off/8]>>(7-r.off%8)) & 1
	r.off++
	return v, nil
}

func (r *bitReader) u(n int) (uint, error) {
	var v uint
	for range n {
		b, err := r.u1()
		if err != nil {
			return 0, err
		}
		v = v<<1 | b
	}
	return v, nil
}

func (r *bitReader) ue() (uint, error) {
	zeros := 0
	for {
		b, err := r.u1()
		if err != nil {
			return 0, err
		}
		if b == 1 {
			break
		}
		zeros++
		if zeros > 31 {
			return 0, errShortSPS
		}
	}
	rest, err := r.u(zeros)
	if err != nil {
		return 0, err
	}
	return (1<<zeros - 1) + rest, nil
}

func (r *bitReader) se() (int, error) {
	v, err := r.ue()
	if err != nil {
		return 0, err
	}
	if v%2 == 1 {
		return int(v+1) / 2, nil
	}
	return -int(v / 2), nil
}

// SPSSize returns the picture width and height an SPS NAL unit (without
// start code) declares, cropping applied. It fails on anything it cannot
// read; it never panics.
func SPSSize(sps []byte) (w, h int, err error) {
	if len(sps) < 4 || NALType(sps) != NALTypeSPS {
		return 0, 0, errShortSPS
	}
	r := &bitReader{b: UnescapeRBSP(nil, sps[1:])}
	profile, _ := r.u(8)
	if _, err := r.u(16); err != nil { // constraint flags, level
		return 0, 0, err
	}
	if _, err := r.ue(); err != nil { // seq_parameter_set_id
		return 0, 0, err
	}
	chroma := uint(1)
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		if chroma, err = r.ue(); err != nil {
			return 0, 0, err
		}
		if chroma == 3 {
			if _, err := r.u1(); err != nil {
				return 0, 0, err
			}
		}
		for range 2 { // bit depths
			if _, err := r.ue(); err != nil {
				return 0, 0, err
			}
		}
		if _, err := r.u1(); err != nil { // qpprime_y_zero_transform_bypass
			return 0, 0, err
		}
		present, err := r.u1()
		if err != nil {
			return 0, 0, err
		}
		if present == 1 {
			lists := 8
			if chroma == 3 {
				lists = 12
			}
			for i := range lists {
				f, err := r.u1()
				if err != nil {
					return 0, 0, err
				}
				if f == 0 {
					continue
				}
				size := 16
				if i >= 6 {
					size = 64
				}
				last, next := 8, 8
				for range size {
					if next != 0 {
						d, err := r.se()
						if err != nil {
							return 0, 0, err
						}
						next = (last + d + 256) % 256
					}
					if next != 0 {
						last = next
					}
				}
			}
		}
	}
	if _, err := r.ue(); err != nil { // log2_max_frame_num_minus4
		return 0, 0, err
	}
	poc, err := r.ue()
	if err != nil {
		return 0, 0, err
	}
	switch poc {
	case 0:
		if _, err := r.ue(); err != nil {
			return 0, 0, err
		}
	case 1:
		if _, err := r.u1(); err != nil {
			return 0, 0, err
		}
		for range 2 {
			if _, err := r.se(); err != nil {
				return 0, 0, err
			}
		}
		n, err := r.ue()
		if err != nil || n > 255 {
			return 0, 0, errShortSPS
		}
		for range n {
			if _, err := r.se(); err != nil {
				return 0, 0, err
			}
		}
	}
	if _, err := r.ue(); err != nil { // max_num_ref_frames
		return 0, 0, err
	}
	if _, err := r.u1(); err != nil { // gaps_in_frame_num_value_allowed_flag
		return 0, 0, err
	}
	wmbs, err := r.ue()
	if err != nil {
		return 0, 0, err
	}
	hmaps, err := r.ue()
	if err != nil {
		return 0, 0, err
	}
	frameMbsOnly, err := r.u1()
	if err != nil {
		return 0, 0, err
	}
	if frameMbsOnly == 0 {
		if _, err := r.u1(); err != nil {
			return 0, 0, err
		}
	}
	if _, err := r.u1(); err != nil { // direct_8x8_inference_flag
		return 0, 0, err
	}
	cropping, err := r.u1()
	if err != nil {
		return 0, 0, err
	}
	var crop [4]uint
	if cropping == 1 {
		for i := range crop {
			if crop[i], err = r.ue(); err != nil {
				return 0, 0, err
			}
		}
	}
	if wmbs > 1024 || hmaps > 1024 {
		return 0, 0, errShortSPS
	}
	unitX, unitY := uint(1), 2-frameMbsOnly
	switch chroma {
	case 1:
		unitX, unitY = 2, 2*(2-frameMbsOnly)
	case 2:
		unitX = 2
	}
	wi := int(wmbs+1)*16 - int((crop[0]+crop[1])*unitX)
	hi := int(2-frameMbsOnly)*int(hmaps+1)*16 - int((crop[2]+crop[3])*unitY)
	if wi <= 0 || hi <= 0 {
		return 0, 0, errShortSPS
	}
	return wi, hi, nil
}
