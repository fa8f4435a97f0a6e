package dkg

import (
	"encoding/json"
	"fmt"

	"github.com/drand/kyber"
	kdkg "github.com/drand/kyber/share/dkg"
)

// The DKG's packets as they travel inside an envelope (JSON; byte fields in base64). Points are
// compressed G1 points, checked on the curve and in the group when read; scalars are 32
// big-endian bytes.

type wireDeal struct {
	Share     uint32 `json:"share"`
	Encrypted []byte `json:"encrypted"`
}

type wireDealBundle struct {
	Dealer  uint32     `json:"dealer"`
	Deals   []wireDeal `json:"deals"`
	Public  [][]byte   `json:"public"`
	Session []byte     `json:"session"`
	Sig     []byte     `json:"sig"`
}

type wireResponse struct {
	Dealer uint32 `json:"dealer"`
	OK     bool   `json:"ok"`
}

type wireResponseBundle struct {
	Share     uint32         `json:"share"`
	Responses []wireResponse `json:"responses"`
	Session   []byte         `json:"session"`
	Sig       []byte         `json:"sig"`
}

type wireJustification struct {
	Share  uint32 `json:"share"`
	Secret []byte `json:"secret"`
}

type wireJustificationBundle struct {
	Dealer         uint32              `json:"dealer"`
	Justifications []wireJustification `json:"justifications"`
	Session        []byte              `json:"session"`
	Sig            []byte              `json:"sig"`
}

func encodeDeals(b *kdkg.DealBundle) ([]byte, error) {
	w := wireDealBundle{Dealer: b.DealerIndex, Session: b.SessionID, Sig: b.Signature}
	for _, d := range b.Deals {
		w.Deals = append(w.Deals, wireDeal{d.ShareIndex, d.EncryptedShare})
	}
	for _, p := range b.Public {
		pb, err := p.MarshalBinary()
		if err != nil {
			return nil, err
		}
		w.Public = append(w.Public, pb)
	}
	return json.Marshal(w)
}

func decodeDeals(data []byte) (*kdkg.DealBundle, error) {
	var w wireDealBundle
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, err
	}
	if len(w.Deals) > MaxMembers || len(w.Public) > MaxMembers {
		return nil, fmt.Errorf("deal bundle: %d deals, %d coefficients", len(w.Deals), len(w.Public))
	}
	b := &kdkg.DealBundle{DealerIndex: w.Dealer, SessionID: w.Session, Signature: w.Sig}
	for _, d := range w.Deals {
		b.Deals = append(b.Deals, kdkg.Deal{ShareIndex: d.Share, EncryptedShare: d.Encrypted})
	}
	for _, pb := range w.Public {
		p := g1.Point()
		if err := p.UnmarshalBinary(pb); err != nil {
			return nil, fmt.Errorf("deal bundle: coefficient: %w", err)
		}
		b.Public = append(b.Public, p)
	}
	return b, nil
}

func encodeResponses(b *kdkg.ResponseBundle) ([]byte, error) {
	w := wireResponseBundle{Share: b.ShareIndex, Session: b.SessionID, Sig: b.Signature}
	for _, r := range b.Responses {
		w.Responses = append(w.Responses, wireResponse{r.DealerIndex, r.Status})
	}
	return json.Marshal(w)
}

func decodeResponses(data []byte) (*kdkg.ResponseBundle, error) {
	var w wireResponseBundle
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, err
	}
	if len(w.Responses) > MaxMembers {
		return nil, fmt.Errorf("response bundle: %d responses", len(w.Responses))
	}
	b := &kdkg.ResponseBundle{ShareIndex: w.Share, SessionID: w.Session, Signature: w.Sig}
	for _, r := range w.Responses {
		b.Responses = append(b.Responses, kdkg.Response{DealerIndex: r.Dealer, Status: r.OK})
	}
	return b, nil
}

func encodeJustifications(b *kdkg.JustificationBundle) ([]byte, error) {
	w := wireJustificationBundle{Dealer: b.DealerIndex, Session: b.SessionID, Sig: b.Signature}
	for _, j := range b.Justifications {
		sb, err := j.Share.MarshalBinary()
		if err != nil {
			return nil, err
		}
		w.Justifications = append(w.Justifications, wireJustification{j.ShareIndex, sb})
	}
	return json.Marshal(w)
}

func decodeJustifications(data []byte) (*kdkg.JustificationBundle, error) {
	var w wireJustificationBundle
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, err
	}
	if len(w.Justifications) > MaxMembers {
		return nil, fmt.Errorf("justification bundle: %d justifications", len(w.Justifications))
	}
	b := &kdkg.JustificationBundle{DealerIndex: w.Dealer, SessionID: w.Session, Signature: w.Sig}
	for _, j := range w.Justifications {
		s, err := scalarOf(j.Secret)
		if err != nil {
			return nil, fmt.Errorf("justification: %w", err)
		}
		b.Justifications = append(b.Justifications, kdkg.Justification{ShareIndex: j.Share, Share: s})
	}
	return b, nil
}

// scalarOf reads a 32-byte big-endian scalar, refusing one not below the group order.
func scalarOf(b []byte) (kyber.Scalar, error) {
	s := g1.Scalar()
	if err := s.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return s, nil
}
