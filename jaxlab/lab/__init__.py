"""The lab's compiled levels: a Session (one seed's pure chunk), a Trial (the Session
vmapped over seeds, compiled once), search batching of settings, and evaluation."""
