module watchwire/receiver

go 1.19
