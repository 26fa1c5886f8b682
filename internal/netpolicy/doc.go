// Package netpolicy is the one place that decides where credential-bearing
// HTTP may go and what may be shown on a terminal: which hosts are the same
// host (CanonicalHost), which are this machine (Loopback), which URLs may
// receive credentials (CheckURL, CheckRedirect), which request paths lie
// under a configured prefix (UnderPath), and how untrusted single-line text
// is made safe to print (TerminalSafe).
//
// Every judgement is made on what would actually be sent: the host that
// net/http dials (the IDNA lookup form of the name, RFC 5891 and UTS #46),
// and the path as the server could resolve it. Where servers disagree, the
// answer is the one that withholds credentials.
package netpolicy
