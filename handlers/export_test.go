package handlers

// CutPrefix lets the tests read what a bus sent.
var CutPrefix = cutPrefix
